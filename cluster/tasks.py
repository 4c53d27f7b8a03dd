"""Celery tasks of the control plane. Queues (settings.CELERY_TASK_ROUTES): `heartbeat` for the
dispatcher and probes, `failover` for failovers, `default` for the rest."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from celery import shared_task
from celery.signals import worker_process_shutdown
from django.db.models import Count, F, Q
from django.utils import timezone

from . import retention
from .choices import ClusterState, Role, ServerState, StepKind
from .commands import RoleCommand, send_role
from .commands import probe as probe_agent
from .failover import Failover, disagreement
from .heartbeat import batch, dispatch, last_seen
from .heartbeat.decisions import Queued, QueueFailover, QueueReconcile
from .incident_log import record_step
from .models import Cluster, ReplicationJob, Server

log = logging.getLogger(__name__)


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# -- the heartbeat (cluster/heartbeat/: the walk of one heartbeat is its package docstring) ---------


@shared_task(ignore_result=True)
def dispatch_heartbeats() -> int:
    """Every second (beat): the heartbeat batches of the coming window, each queued with an ETA at
    its slot's time and an expiry one interval later; then the failovers to resume."""
    sent = 0
    for interval, slot, cluster_ids in dispatch.due_batches():
        slot_time = slot * interval
        probe_batch.apply_async((interval, slot, cluster_ids), eta=_at(slot_time), expires=_at(slot_time + interval))
        sent += 1
    _resume_failovers()
    return sent


@shared_task(ignore_result=True)
def probe_batch(interval: float, slot: int, cluster_ids: list[int]) -> str:
    return batch.run_batch(interval, slot, cluster_ids, queue=_queue)


def _queue(what: Queued) -> None:
    """What a heartbeat batch decided is to be queued."""
    if isinstance(what, QueueFailover):
        run_failover.apply_async((what.cluster_id,), expires=30)
    elif isinstance(what, QueueReconcile):
        reconcile_secondary.delay(what.cluster_id)


@worker_process_shutdown.connect
def _close_client(**kwargs) -> None:
    batch.close_client()


@shared_task(ignore_result=True)
def flush_last_seen() -> int:
    """The periodic flush of last-seen times (DESIGN §4.6), off the heartbeat queue."""
    return last_seen.flush_last_seen()


def _resume_failovers() -> None:
    """Standing requests whose task was lost, backoffs that ended, and claims that expired (§4a.6)."""
    now = timezone.now()
    due = Q(state=ClusterState.FAILING_OVER, claimed_until__lt=now) | (
        Q(failover_request__isnull=False)
        & ~Q(state=ClusterState.FAILING_OVER)
        & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    )
    for cluster_id in Cluster.objects.filter(due).values_list("id", flat=True):
        run_failover.apply_async((cluster_id,), expires=30)


# -- failover, configuration, replication -----------------------------------------------------------


@shared_task(ignore_result=True, acks_late=True)
def run_failover(cluster_id: int) -> str:
    return Failover(cluster_id).run()


@shared_task(ignore_result=True)
def configure_cluster(cluster_id: int) -> str:
    """A new cluster: both agents configured at epoch 1 (DESIGN §5, "Cluster created")."""
    cluster = Cluster.objects.select_related("primary", "secondary").filter(pk=cluster_id).first()
    if cluster is None:
        return "no such cluster"
    primary = send_role(cluster, cluster.primary, RoleCommand(Role.PRIMARY, cluster.epoch, peer=cluster.secondary))
    secondary = send_role(cluster, cluster.secondary, RoleCommand(Role.SECONDARY, cluster.epoch, peer=cluster.primary))
    if not (primary.ok and secondary.ok):
        problems = [
            f"{s.name}: {a.error or a.body}"
            for s, a in ((cluster.primary, primary), (cluster.secondary, secondary))
            if not a.ok
        ]
        log.warning("configuring cluster %s failed: %s", cluster.name, "; ".join(problems))
        # A reused appliance may hold a later epoch than this new cluster's: start at that epoch
        # (the seq was adopted already) rather than be refused for ever.
        adopted = Cluster.objects.filter(pk=cluster_id, state=ClusterState.SYNCING, epoch__lt=F("epoch_floor")).update(
            epoch=F("epoch_floor"), grant_fence_epoch=F("epoch_floor")
        )
        configure_cluster.apply_async((cluster_id,), countdown=0 if adopted else 5)
        return "retrying"
    Server.objects.filter(pk=cluster.primary_id).update(role=Role.PRIMARY)
    Server.objects.filter(pk=cluster.secondary_id).update(role=Role.SECONDARY)
    replicate.delay(cluster_id, ReplicationJob.Kind.INITIAL)
    return "configured"


def _resend_roles(cluster: Cluster) -> bool:
    """Both agents sent the role they hold again (same epoch, a new seq), carrying the cluster's
    current settings and each one's peer credential; True once both acknowledged. The primary only
    while it holds the primary role at this epoch (a primary that does not is the failover
    pipeline's to reconcile, never a command's to promote)."""
    held = [send_role(cluster, cluster.secondary, RoleCommand(Role.SECONDARY, cluster.epoch, peer=cluster.primary))]
    if disagreement(probe_agent(cluster.primary, cluster.epoch).body, cluster.epoch) == "":
        held.append(
            send_role(cluster, cluster.primary, RoleCommand(Role.PRIMARY, cluster.epoch, peer=cluster.secondary))
        )
    return len(held) == 2 and all(answer.ok for answer in held)


@shared_task(ignore_result=True)
def push_settings(cluster_id: int, acknowledged_at: float | None = None) -> str:
    """A change of timing as an ordered command to both agents (docs/protocol.md, "Settings
    changes are commands"), sent until both acknowledged it. `lease_bound_s` is cleared only once
    the old lease has run out since both acknowledged (a grant of the old lease may have left just
    before an acknowledgement, however late that came), and no newer change came meanwhile."""
    cluster = Cluster.objects.select_related("primary", "secondary").filter(pk=cluster_id).first()
    if cluster is None or cluster.lease_bound_s is None:
        return "nothing to push"
    if acknowledged_at is None:
        if cluster.state == ClusterState.FAILING_OVER or cluster.failover_request is not None:
            push_settings.apply_async((cluster_id,), countdown=cluster.heartbeat_interval)
            return "failover in progress"
        if not _resend_roles(cluster):
            push_settings.apply_async((cluster_id,), countdown=cluster.heartbeat_interval)
            return "not acknowledged by both agents yet"
        push_settings.apply_async((cluster_id, time.time()), countdown=_old_lease_runs_s(cluster))
        return "acknowledged; the old lease may still run"
    settled_at = acknowledged_at + _old_lease_runs_s(cluster)
    if time.time() < settled_at:
        push_settings.apply_async((cluster_id, acknowledged_at), eta=_at(settled_at))
        return "the old lease may still run"
    Cluster.objects.filter(pk=cluster_id, settings_changed_at__lte=_at(acknowledged_at)).update(lease_bound_s=None)
    return "acknowledged"


def _old_lease_runs_s(cluster: Cluster) -> float:
    """How long an old-lease grant sent just before an acknowledgement may still hold."""
    return cluster.lease_bound_s + cluster.max_grant_delay + cluster.max_clock_skew


PEER_CREDENTIAL_ATTEMPTS = 60  # then the next role command (a reconcile, a failover) carries it


@shared_task(ignore_result=True)
def push_peer_credentials(cluster_id: int, attempt: int = 1) -> str:
    """A server's agent token changed: its peer must heartbeat it with the new token's peer
    credential (a token rotation without a failover: operator guide, "Keys and tokens")."""
    cluster = Cluster.objects.select_related("primary", "secondary").filter(pk=cluster_id).first()
    if cluster is None:
        return "no such cluster"
    busy = cluster.state == ClusterState.FAILING_OVER or cluster.failover_request is not None
    if busy or not _resend_roles(cluster):
        if attempt < PEER_CREDENTIAL_ATTEMPTS:
            push_peer_credentials.apply_async((cluster_id, attempt + 1), countdown=cluster.heartbeat_interval)
        return "not acknowledged by both agents yet"
    return "acknowledged"


@shared_task(ignore_result=True)
def reconcile_secondary(cluster_id: int) -> str:
    """A returning server (an old primary, a wiped appliance) becomes secondary at the current epoch."""
    cluster = Cluster.objects.select_related("primary", "secondary").filter(pk=cluster_id).first()
    if cluster is None or cluster.state == ClusterState.FAILING_OVER or cluster.failover_request is not None:
        return "failover in progress"
    answer = send_role(cluster, cluster.secondary, RoleCommand(Role.SECONDARY, cluster.epoch, peer=cluster.primary))
    if answer.ok:
        Server.objects.filter(pk=cluster.secondary_id).update(role=Role.SECONDARY)
        # Not healthy again until it holds the new primary's data (files only it has: quarantined).
        Cluster.objects.filter(pk=cluster_id).update(needs_resync=True)
        record_step(
            cluster_id,
            StepKind.REJOINED,
            worker="default worker",
            server=cluster.secondary.name,
            epoch=cluster.epoch,
            primary=cluster.primary.name,
        )
        replicate.delay(cluster_id, ReplicationJob.Kind.RESYNC)
        return "configured"
    return f"not configured: {answer.error or answer.body}"


@shared_task(ignore_result=True)
def replicate(cluster_id: int, kind: str = ReplicationJob.Kind.INCREMENTAL) -> str:
    """One replication job; at most one per cluster runs (DESIGN §5)."""
    from .replication import Replication, start_job

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


@shared_task(ignore_result=True)
def dispatch_replication() -> int:
    """Start the jobs that are due: each cluster every `replication_interval`, sooner after a failure
    (backoff), and at once for a cluster that waits for its initial sync or a resync."""
    from .replication import close_stale_jobs, with_last_job

    close_stale_jobs()
    now = timezone.now()
    clusters = list(
        with_last_job(Cluster.objects.exclude(state=ClusterState.FAILING_OVER))
        .filter(failover_request__isnull=True)
        .exclude(secondary__state=ServerState.DOWN)  # nothing to copy to
    )
    failures = _failures_since_last_success([c.pk for c in clusters if c.last_job_state in FAILED_STATES])
    started = 0
    for cluster in clusters:
        if _replication_due(cluster, failures.get(cluster.pk, 0), now):
            replicate.delay(cluster.pk)
            started += 1
    return started


FAILED_STATES = (ReplicationJob.State.FAILED, ReplicationJob.State.ABORTED)


def _failures_since_last_success(cluster_ids: list[int]) -> dict[int, int]:
    """Failed jobs since each cluster's last success, for the backoff: one query for them all."""
    rows = (
        ReplicationJob.objects.filter(cluster_id__in=cluster_ids, state__in=FAILED_STATES)
        .filter(Q(cluster__last_replication_at__isnull=True) | Q(finished_at__gt=F("cluster__last_replication_at")))
        .values("cluster_id")
        .annotate(count=Count("id"))
    )
    return {row["cluster_id"]: row["count"] for row in rows}


def _replication_due(cluster: Cluster, failures: int, now) -> bool:
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


@shared_task(ignore_result=True)
def prune_old_rows() -> dict[str, int]:
    """Daily (beat): delete events, deliveries, replication jobs and login logs past their retention."""
    return retention.prune()
