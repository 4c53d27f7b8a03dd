"""Notifications under the campaign's faults: every event must reach each of its targets at least
once (a crash may repeat a send, never lose one). Each cluster gets the fault matrix's rules (an
email to a real SMTP server in this process, a v2c trap and inform to a real snmptrapd where it is
installed) and the same receiver-side check, tests/support/notifications.py; what it reports
missing becomes an `undelivered` record in the history."""

from __future__ import annotations

import logging
from pathlib import Path

from django.db import close_old_connections

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
                rules.assert_delivered(exactly_once=False, timeout=timeout)
            except AssertionError as missing:
                history("undelivered", cluster=name, missing=str(missing).splitlines())

    def stop(self) -> None:
        self.smtp.stop()
        if self.trapd is not None:
            self.trapd.stop()
