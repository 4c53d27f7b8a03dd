"""Which replication job runs when (DESIGN §5): each cluster every `replication_interval`, sooner
after a failure (backoff), at once for a cluster that waits for its initial sync or a resync; never
during a failover, and at most one job per cluster at a time (the job row is the claim).

The job itself, once started, is cluster/replication.py's. The Celery tasks (cluster/tasks.py
`replicate`, `dispatch_replication`) only call `run_job` and queue what `due_cluster_ids` returns.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from .choices import ClusterState, ServerState
from .models import Cluster, ReplicationJob
from .replication import Replication

FAILED_STATES = (ReplicationJob.State.FAILED, ReplicationJob.State.ABORTED)


def start_job(cluster: Cluster, kind: str) -> ReplicationJob | None:
    """Insert the job row, or None when one is running already."""
    try:
        with transaction.atomic():
            return ReplicationJob.objects.create(
                cluster=cluster,
                kind=kind,
                source=cluster.primary,
                target=cluster.secondary,
                epoch=cluster.epoch,
            )
    except IntegrityError:
        return None


def run_job(cluster_id: int, kind: str = ReplicationJob.Kind.INCREMENTAL) -> str:
    """One replication job; at most one per cluster runs (DESIGN §5)."""
    cluster = Cluster.objects.select_related("primary", "secondary").filter(pk=cluster_id).first()
    if cluster is None or cluster.state == ClusterState.FAILING_OVER or cluster.failover_request is not None:
        return "not now"
    if kind == ReplicationJob.Kind.INCREMENTAL and cluster.state == ClusterState.SYNCING:
        kind = ReplicationJob.Kind.INITIAL
    if kind == ReplicationJob.Kind.INCREMENTAL and cluster.needs_resync:
        kind = ReplicationJob.Kind.RESYNC
    job = start_job(cluster, kind)
    if job is None:
        return "a job is running"
    return Replication(job).run()


def close_stale_jobs() -> int:
    """Jobs whose worker stopped reporting: failed, so that the next job can start."""
    cutoff = timezone.now() - timedelta(seconds=settings.REPLICATION_STALE_S)
    return ReplicationJob.objects.filter(state=ReplicationJob.State.RUNNING, alive_at__lt=cutoff).update(
        state=ReplicationJob.State.FAILED,
        error="the worker running this job stopped reporting",
        finished_at=timezone.now(),
    )


def with_last_job(clusters: QuerySet[Cluster]) -> QuerySet[Cluster]:
    """Annotate each cluster with its last job's state, error and end, in the same query."""
    last = ReplicationJob.objects.filter(cluster=OuterRef("pk")).order_by("-id")
    return clusters.annotate(
        last_job_state=Subquery(last.values("state")[:1]),
        last_job_error=Subquery(last.values("error")[:1]),
        last_job_finished_at=Subquery(last.values("finished_at")[:1]),
    )


def due_cluster_ids() -> list[int]:
    """The clusters whose next job is due now (stale jobs closed first)."""
    close_stale_jobs()
    now = timezone.now()
    clusters: list[Any] = list(  # annotated by with_last_job
        with_last_job(Cluster.objects.exclude(state=ClusterState.FAILING_OVER))
        .filter(failover_request__isnull=True)
        .exclude(secondary__state=ServerState.DOWN)  # nothing to copy to
    )
    failures = failures_since_last_success([c.pk for c in clusters if c.last_job_state in FAILED_STATES])
    return [cluster.pk for cluster in clusters if replication_due(cluster, failures.get(cluster.pk, 0), now)]


def failures_since_last_success(cluster_ids: list[int]) -> dict[int, int]:
    """Failed jobs since each cluster's last success, for the backoff: one query for them all."""
    rows = (
        ReplicationJob.objects.filter(cluster_id__in=cluster_ids, state__in=FAILED_STATES)
        .filter(Q(cluster__last_replication_at__isnull=True) | Q(finished_at__gt=F("cluster__last_replication_at")))
        .values("cluster_id")
        .annotate(count=Count("id"))
    )
    return {row["cluster_id"]: row["count"] for row in rows}


def replication_due(cluster: Any, failures: int, now: datetime) -> bool:
    """From the cluster's last-job annotations (`with_last_job`): no query of its own."""
    if cluster.last_job_state is None:
        return cluster.state != ClusterState.SYNCING  # a new cluster's first job comes from configure
    if cluster.last_job_state == ReplicationJob.State.RUNNING or cluster.last_job_finished_at is None:
        return False
    waited = (now - cluster.last_job_finished_at).total_seconds()
    if cluster.last_job_state in FAILED_STATES:
        return waited >= min(cluster.replication_interval, 2.0 * 2 ** min(failures, 8))
    if cluster.needs_resync or cluster.state == ClusterState.SYNCING:
        return True
    return waited >= cluster.replication_interval
