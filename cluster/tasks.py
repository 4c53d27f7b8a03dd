"""Celery tasks of the control plane. Queues (settings.CELERY_TASK_ROUTES): `heartbeat` for the
dispatcher and probes, `failover` for failovers, `default` for the rest."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task
from celery.signals import worker_process_shutdown
from django.db.models import Q
from django.utils import timezone

from . import agent_config, replication_schedule, retention
from .choices import ClusterState
from .failover import Failover
from .heartbeat import batch, dispatch, last_seen
from .heartbeat.decisions import Queued, QueueFailover, QueueReconcile
from .models import Cluster, ReplicationJob

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
    return _queue_next(configure_cluster, agent_config.configure(cluster_id), cluster_id)


@shared_task(ignore_result=True)
def push_settings(cluster_id: int, acknowledged_at: float | None = None, changed_at: str | None = None) -> str:
    """A change of timing, sent to both agents until acknowledged (agent_config.push_settings)."""
    outcome = agent_config.push_settings(cluster_id, acknowledged_at, changed_at)
    return _queue_next(push_settings, outcome, cluster_id)


@shared_task(ignore_result=True)
def push_peer_credentials(cluster_id: int, attempt: int = 1) -> str:
    """A server's new agent token, carried to its peer (agent_config.push_peer_credentials)."""
    return _queue_next(push_peer_credentials, agent_config.push_peer_credentials(cluster_id, attempt), cluster_id)


@shared_task(ignore_result=True)
def reconcile_secondary(cluster_id: int) -> str:
    """A returning server becomes secondary at the current epoch (agent_config.reconcile_secondary)."""
    return _queue_next(reconcile_secondary, agent_config.reconcile_secondary(cluster_id), cluster_id)


def _queue_next(task, outcome: agent_config.Next, cluster_id: int) -> str:
    """Queue what an agent_config function says follows it; returns its status."""
    if outcome.again is not None and outcome.again_at is not None:
        task.apply_async(outcome.again, eta=_at(outcome.again_at))
    elif outcome.again is not None:
        task.apply_async(outcome.again, countdown=outcome.again_in_s)
    if outcome.replicate:
        replicate.delay(cluster_id, outcome.replicate)
    return outcome.status


@shared_task(ignore_result=True)
def replicate(cluster_id: int, kind: str = ReplicationJob.Kind.INCREMENTAL) -> str:
    """One replication job; at most one per cluster runs (DESIGN §5)."""
    return replication_schedule.run_job(cluster_id, kind)


@shared_task(ignore_result=True)
def dispatch_replication() -> int:
    """Start the jobs that are due: each cluster every `replication_interval`, sooner after a failure
    (backoff), and at once for a cluster that waits for its initial sync or a resync."""
    due = replication_schedule.due_cluster_ids()
    for cluster_id in due:
        replicate.delay(cluster_id)
    return len(due)


@shared_task(ignore_result=True)
def prune_old_rows() -> dict[str, int]:
    """Daily (beat): delete events, deliveries, replication jobs and login logs past their retention."""
    return retention.prune()
