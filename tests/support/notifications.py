"""Notifications in the fault matrix (issue #6, DESIGN §4.5): every scenario's cluster can have its
own rules — an email to the session's SMTP server, a v2c trap and a v2c inform to the session's
snmptrapd — and ends by checking that every event of that cluster reached each target at least
once, and exactly once when no crash of a control-plane process, Redis or PostgreSQL was injected.

    under_test = make_cluster("kill", notify=True)
    ...the fault...
    under_test.assert_notified(exactly_once=True)

Receipt is judged at the receivers, by the event id a notification carries (the email's
`X-DMS-Event-Id` header, the trap's dmsEventId varbind) together with the cluster's name (the
email's recipient, the trap's dmsEventCluster varbind): a scenario of another cluster, or of another
database, can never be counted. The Delivery rows only say when to stop waiting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db.models import Count

from alerts.choices import EventType
from alerts.models import Delivery, Event, NotificationRule
from alerts.transports import snmp_oids as oids
from tests.support.agents import wait_until
from tests.support.processes import log_tail
from tests.support.smtp import SmtpServer
from tests.support.snmptrapd import Snmptrapd, Trap

EVENT_ID_OID = oids.dotted(oids.EVENT_ID + (0,))
EVENT_CLUSTER_OID = oids.dotted(oids.EVENT_CLUSTER + (0,))

# The control plane's notification timings in tests (its workers' and beat's environment): retries
# and the sweeper in seconds, not minutes. A claim outlives the slowest send (an inform: 3 s, one
# retry) with a margin, and is short enough that a send cut off by a crash is taken up again soon.
FAST_NOTIFICATIONS = {
    "NOTIFICATION_RETRY_BASE_S": "0.5",
    "NOTIFICATION_RETRY_MAX_S": "2",
    "NOTIFICATION_CLAIM_S": "10",
    "NOTIFICATION_SWEEP_GRACE_S": "1",
    "NOTIFICATION_SWEEP_INTERVAL_S": "1",
}
# Long enough for a claim left by a killed worker to run out and be swept up (claim + sweep).
CRASH_TIMEOUT_S = float(FAST_NOTIFICATIONS["NOTIFICATION_CLAIM_S"]) + 15
OPEN = ("pending", "sending")


@dataclass(frozen=True)
class Sinks:
    """The receivers: a real SMTP server and, where Debian's snmptrapd is installed, a real one."""

    smtp: SmtpServer
    trapd: Snmptrapd | None


@dataclass(frozen=True)
class Target:
    rule_id: int
    name: str  # "email", "trap" or "inform"


class ClusterNotifications:
    """The rules of one cluster and the check its scenario ends with."""

    def __init__(self, cluster, sinks: Sinks, targets: list[Target]) -> None:
        self.cluster_id = cluster.pk
        self.cluster_name = cluster.name
        self.sinks = sinks
        self.targets = targets

    @classmethod
    def create_rules(cls, cluster, sinks: Sinks) -> ClusterNotifications:
        """Rules for every event type of `cluster` only. Create them in the transaction that
        creates the cluster, so that no event of it is recorded before they exist."""
        every_type = [event_type.value for event_type in EventType]
        made = [("email", dict(channel="email", recipients=[cls.recipient(cluster.name)]))]
        if sinks.trapd is not None:
            snmp = dict(channel="snmp", host="127.0.0.1", port=sinks.trapd.port, community=sinks.trapd.community)
            made += [("trap", {**snmp, "snmp_mode": "trap"}), ("inform", {**snmp, "snmp_mode": "inform"})]
        targets = []
        for name, fields in made:
            rule = NotificationRule.objects.create(name=f"{cluster.name}-{name}", event_types=every_type, **fields)
            rule.clusters.set([cluster])
            targets.append(Target(rule.pk, name))
        return cls(cluster, sinks, targets)

    @staticmethod
    def recipient(cluster_name: str) -> str:
        return f"noc+{cluster_name}@example.com"

    # -- what the receivers got

    def _received(self, target: Target, event_id: int, traps: list[Trap]) -> int:
        if target.name == "email":
            recipient = self.recipient(self.cluster_name)
            return len(
                self.sinks.smtp.matching(
                    lambda mail: mail.header("X-DMS-Event-Id") == str(event_id) and recipient in mail.rcpt_tos
                )
            )
        assert self.sinks.trapd is not None
        pdu = "INFORM" if target.name == "inform" else "TRAP2"
        return sum(1 for trap in traps if trap.pdu == pdu and self._about(trap, event_id))

    def _about(self, trap: Trap, event_id: int) -> bool:
        return trap.varbinds.get(EVENT_ID_OID) == event_id and trap.varbinds.get(EVENT_CLUSTER_OID) == self.cluster_name

    def _counts(self, events: list[tuple[int, str]]) -> dict[tuple[int, Target], int]:
        traps = self.sinks.trapd.traps() if self.sinks.trapd is not None else []
        return {
            (event_id, target): self._received(target, event_id, traps)
            for event_id, _ in events
            for target in self.targets
        }

    # -- the checks

    def _deliveries(self):
        return Delivery.objects.filter(
            event__cluster_id=self.cluster_id, rule_id__in=[target.rule_id for target in self.targets]
        )

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Until no notification of the cluster is waiting or being sent: before a scenario freezes
        the control plane for longer than a claim, which would otherwise be sent again."""
        wait_until(
            lambda: not self._deliveries().filter(status__in=OPEN).exists(),
            timeout,
            0.05,
            f"the open notifications of {self.cluster_name} to be sent",
        )

    def assert_delivered(
        self, *, exactly_once: bool, timeout: float | None = None, silenced: frozenset[int] = frozenset()
    ) -> None:
        """Every event of the cluster recorded so far reached every target at least once, and
        exactly once when `exactly_once` (no crash injected). Waits, with a deadline, for the
        outbox to finish and the receivers to log what was sent; lists what is missing or doubled.
        `silenced`: events the caller knows were recorded with no notification at all (a cluster in
        maintenance sends none); each of them must then have no delivery row, not some."""
        timeout = timeout if timeout is not None else (15.0 if exactly_once else CRASH_TIMEOUT_S)
        deadline = time.monotonic() + timeout
        events = list(Event.objects.filter(cluster_id=self.cluster_id).order_by("id").values_list("id", "type"))
        assert events, f"no event recorded for {self.cluster_name}"
        rule_ids = [target.rule_id for target in self.targets]
        written = Delivery.objects.filter(event_id__in=[event_id for event_id, _ in events], rule_id__in=rule_ids)
        per_event = dict(written.values("event_id").annotate(n=Count("id")).values_list("event_id", "n"))
        events = [
            (event_id, kind) for event_id, kind in events if not (event_id in silenced and event_id not in per_event)
        ]
        deliveries = Delivery.objects.filter(event_id__in=[event_id for event_id, _ in events], rule_id__in=rule_ids)

        # The outbox was written with each event: one row per event and rule, none left out.
        unwritten = [f"{event_id} {kind}" for event_id, kind in events if per_event.get(event_id) != len(rule_ids)]
        assert not unwritten, f"events without a delivery to each of {len(rule_ids)} rules: {unwritten}"

        while deliveries.filter(status__in=OPEN).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Sent (a trap) or delivered (an email, an inform) is not yet logged by the receiver.
        while True:
            counts = self._counts(events)
            if all(counts.values()) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)

        problems = []
        rows = {(row.event_id, row.rule_id): row for row in deliveries}
        for event_id, kind in events:
            for target in self.targets:
                received = counts[(event_id, target)]
                if received == 0 or (exactly_once and received > 1):
                    row = rows[(event_id, target.rule_id)]
                    error = f", last error: {row.last_error}" if row.last_error else ""
                    problems.append(
                        f"event {event_id} {kind} → {target.name}: received {received}× "
                        f"(delivery {row.status} after {row.attempts} attempt(s){error})"
                    )
        expected = "exactly once" if exactly_once else "at least once"
        assert not problems, (
            f"notifications of {self.cluster_name} not received {expected} by every target "
            f"within {timeout:g} s:\n"
            + "\n".join(problems)
            + "\n\nthe default worker's log, last lines:\n"
            + log_tail("default", 40)
            + "\n\nbeat's log, last lines:\n"
            + log_tail("beat", 10)
        )
