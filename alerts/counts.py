"""Unacknowledged events counted by severity, for the dashboard and the alerts page: a critical
failure must not hide among informational events, nor an info inflate an alarm. One query, on the
event_unacknowledged partial index."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from .choices import Severity
from .models import Event

ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)


@dataclass
class OpenAlerts:
    critical: int = 0
    warning: int = 0
    info: int = 0

    @property
    def total(self) -> int:
        return self.critical + self.warning + self.info

    def by_severity(self) -> list[tuple[str, str, int]]:
        """(severity, label, count), the gravest first, zeros included."""
        return [(s.value, s.label, getattr(self, s.value)) for s in ORDER]

    def add(self, other: OpenAlerts) -> None:
        for severity in ORDER:
            setattr(self, severity.value, getattr(self, severity.value) + getattr(other, severity.value))


def unacknowledged_by_cluster() -> dict[int | None, OpenAlerts]:
    """Counts per cluster id (None: events of no cluster)."""
    rows = (
        Event.objects.filter(acknowledged_at__isnull=True)
        .values("cluster_id", "severity")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[int | None, OpenAlerts] = {}
    for row in rows:
        if row["severity"] in Severity.values:
            setattr(counts.setdefault(row["cluster_id"], OpenAlerts()), row["severity"], row["n"])
    return counts


def total(counts: dict[int | None, OpenAlerts]) -> OpenAlerts:
    summed = OpenAlerts()
    for open_alerts in counts.values():
        summed.add(open_alerts)
    return summed
