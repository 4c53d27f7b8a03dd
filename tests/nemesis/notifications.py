"""Notifications under the campaign's faults: every event must reach each of its targets at least
once (a crash may repeat a send, never lose one). Each cluster gets the fault matrix's rules (an
email to a real SMTP server in this process, a v2c trap and inform to a real snmptrapd where it is
installed) and the same receiver-side check, tests/support/notifications.py; what it reports
missing becomes an `undelivered` record in the history."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import close_old_connections

from alerts.models import Event
from cluster.models import Cluster
from tests.nemesis.history import History
from tests.support.notifications import FAST_NOTIFICATIONS, ClusterNotifications, Sinks
from tests.support.smtp import SmtpServer
from tests.support.snmptrapd import Snmptrapd, available


class Receivers:
    def __init__(self, directory: Path):
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line per SMTP command
        self.smtp = SmtpServer().start()
        self.trapd = Snmptrapd(directory / "snmptrapd").start() if available() else None
        self.sinks = Sinks(self.smtp, self.trapd)
        self.rules: dict[str, ClusterNotifications] = {}

    def env(self) -> dict[str, str]:
        """What the control plane's processes need to send to these receivers, quickly."""
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(self.smtp.port),
            "EMAIL_TIMEOUT": "3",
            **FAST_NOTIFICATIONS,
        }

    def add_rules(self, cluster: Cluster) -> None:
        """Inside the transaction that creates `cluster`: no event of it can come before its rules."""
        self.rules[cluster.name] = ClusterNotifications.create_rules(cluster, self.sinks)

    def check(self, history: History, timeout: float) -> None:
        for name, rules in self.rules.items():
            close_old_connections()
            try:
                silenced = silenced_by_maintenance(rules.cluster_id, maintenance_windows(history, name))
                rules.assert_delivered(exactly_once=False, timeout=timeout, silenced=silenced)
            except AssertionError as missing:
                history("undelivered", cluster=name, missing=str(missing).splitlines())

    def stop(self) -> None:
        self.smtp.stop()
        if self.trapd is not None:
            self.trapd.stop()


# The operator's edit is recorded after its commit, and a worker under a clock fault stamps events up
# to 1 s off: the windows are widened by this much on each side.
WINDOW_MARGIN = timedelta(seconds=2.5)


def maintenance_windows(history: History, cluster: str) -> list[tuple[datetime, datetime]]:
    """When the campaign's operator had `cluster` in maintenance, on the wall clock (open-ended when
    never switched off)."""
    windows, began = [], None
    for record in history.of("operator"):
        maintenance = (record.get("changes") or {}).get("maintenance")
        if record.get("cluster") != cluster or maintenance is None:
            continue
        at = datetime.fromtimestamp(record["wall"], UTC)
        if maintenance and record.get("outcome") == "saved" and began is None:
            began = at
        elif not maintenance and began is not None:  # saved, or put back through the ORM when refused
            windows.append((began - WINDOW_MARGIN, at + WINDOW_MARGIN))
            began = None
    if began is not None:
        windows.append((began - WINDOW_MARGIN, datetime.max.replace(tzinfo=UTC)))
    return windows


def silenced_by_maintenance(cluster_id: int, windows: list[tuple[datetime, datetime]]) -> frozenset[int]:
    """A cluster in maintenance records events but sends no notification (docs/design.md §4, invariant 3); a
    recovery goes to exactly the rules its failure went to, so one whose failure was silenced is
    silenced too."""
    silenced: set[int] = set()
    for event_id, created_at, recovers_id in (
        Event.objects.filter(cluster_id=cluster_id).order_by("id").values_list("id", "created_at", "recovers_id")
    ):
        if recovers_id in silenced or any(start <= created_at <= end for start, end in windows):
            silenced.add(event_id)
    return frozenset(silenced)
