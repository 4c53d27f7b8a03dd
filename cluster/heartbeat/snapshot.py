"""What a heartbeat batch reads of its clusters, in one query, before any I/O (DESIGN §5): the
rows by field name into `views.ClusterView`s."""

from __future__ import annotations

from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from ..models import Cluster, effective_lease_s, replication_current
from .views import ClusterView, ServerView

SERVER_FIELDS = ("id", "name", "heartbeat_url", "intranet_url", "agent_token", "state", "role")
CLUSTER_FIELDS = (
    "id", "name", "epoch", "grant_fence_epoch", "heartbeat_interval", "lease_s", "missed_heartbeats_threshold",
    "recovery_threshold", "max_clock_skew", "max_grant_delay", "state", "maintenance", "active", "has_request",
    "last_replication_at", "needs_resync", "replication_interval",
    *(f"{side}__{name}" for side in ("primary", "secondary") for name in SERVER_FIELDS),
)  # fmt: skip


def _server(row: dict, side: str) -> ServerView:
    return ServerView(
        id=row[f"{side}__id"],
        name=row[f"{side}__name"],
        heartbeat_url=row[f"{side}__heartbeat_url"],
        intranet_url=row[f"{side}__intranet_url"],
        token=row[f"{side}__agent_token"],
        state=row[f"{side}__state"],
        role=row[f"{side}__role"],
    )


def _cluster(row: dict, now) -> ClusterView:
    return ClusterView(
        id=row["id"],
        name=row["name"],
        epoch=row["epoch"],
        grant_fence_epoch=row["grant_fence_epoch"],
        interval=row["heartbeat_interval"],
        lease_s=effective_lease_s(row["lease_s"], row["heartbeat_interval"]),
        threshold=row["missed_heartbeats_threshold"],
        recovery_threshold=row["recovery_threshold"],
        max_clock_skew=row["max_clock_skew"],
        max_grant_delay=row["max_grant_delay"],
        state=row["state"],
        maintenance=row["maintenance"],
        active=row["active"],
        has_request=row["has_request"],
        replication_current=replication_current(
            row["last_replication_at"], row["needs_resync"], row["replication_interval"], now
        ),
        primary=_server(row, "primary"),
        secondary=_server(row, "secondary"),
    )


def load_views(cluster_ids: list[int], interval: float) -> list[ClusterView]:
    """The clusters of a batch still at this interval, in one query."""
    rows = (
        Cluster.objects.filter(pk__in=cluster_ids, heartbeat_interval=interval)
        .annotate(has_request=ExpressionWrapper(Q(failover_request__isnull=False), output_field=BooleanField()))
        .values(*CLUSTER_FIELDS)
    )
    now = timezone.now()
    return [_cluster(row, now) for row in rows]
