"""Celery tasks of the control plane. Queues (settings.CELERY_TASK_ROUTES): `heartbeat` for the
dispatcher and probes, `failover` for failovers, `default` for the rest."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from . import metrics
from .agent_client import AgentClient
from .choices import ClusterState, Role
from .commands import RoleCommand, send_role
from .failover import Failover
from .heartbeat import SlotEvaluator, skewed_servers
from .heartbeat_state import PREFIX, HeartbeatState
from .models import Cluster, Server
from .probe import ClusterView, probe_slot

log = logging.getLogger(__name__)

DISPATCH_EVERY_S = 1.0  # beat's period for dispatch_heartbeats
WINDOW_S = DISPATCH_EVERY_S + 0.5  # each dispatch schedules the slots of the next window
BATCH = 500
FLUSH_EVERY_S = 10


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


@shared_task(ignore_result=True)
def dispatch_heartbeats() -> int:
    """Schedule every cluster's heartbeat slots of the coming window as batch probe tasks.

    Slots are aligned to multiples of the interval, so clusters with the same interval share slots
    and batches; a Redis claim per (interval, slot) keeps overlapping dispatchers from sending a
    slot twice.
    """
    state = HeartbeatState()
    now = time.time()
    rows = list(Cluster.objects.values_list("id", "heartbeat_interval", "grant_fence_epoch"))
    _reload_fences(state, rows, now)
    by_interval: dict[float, list[int]] = defaultdict(list)
    for cluster_id, interval, _ in rows:
        by_interval[interval].append(cluster_id)
    sent = 0
    for interval, ids in by_interval.items():
        first, last = math.ceil(now / interval), math.floor((now + WINDOW_S) / interval)
        for slot in range(first, last + 1):
            if not state.redis.set(f"{PREFIX}slotgroup:{interval}:{slot}", 1, nx=True, ex=60):
                continue
            slot_time = slot * interval
            for start in range(0, len(ids), BATCH):
                probe_batch.apply_async(
                    (interval, slot, ids[start : start + BATCH]), eta=_at(slot_time), expires=_at(slot_time + interval)
                )
                sent += 1
    _resume_failovers()
    if state.redis.set(f"{PREFIX}flush", 1, nx=True, ex=FLUSH_EVERY_S):
        flush_last_seen(state)
    return sent


def _reload_fences(state: HeartbeatState, rows, now: float) -> None:
    """After a Redis restart nothing is granted until the fence is back from the database (§4a.3)."""
    pipe = state.redis.pipeline(transaction=False)
    for cluster_id, _, _ in rows:
        pipe.exists(f"{PREFIX}fence:{cluster_id}")
    for (cluster_id, _, fence), exists in zip(rows, pipe.execute(), strict=True):
        if not exists:
            state.load_fence(cluster_id, fence, now)


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


def flush_last_seen(state: HeartbeatState) -> None:
    """The periodic flush of last-seen times (DESIGN §4.6): one UPDATE per server that was heard."""
    servers = list(Server.objects.values_list("id", "last_heartbeat_at"))
    seen = state.last_answers([sid for sid, _ in servers])
    changed = []
    for server_id, stored in servers:
        if server_id in seen:
            at = _at(seen[server_id])
            if stored is None or at > stored:
                changed.append(Server(pk=server_id, last_heartbeat_at=at))
    Server.objects.bulk_update(changed, ["last_heartbeat_at"], batch_size=500)


@shared_task(ignore_result=True)
def probe_batch(interval: float, slot: int, cluster_ids: list[int]) -> str:
    slot_time = slot * interval
    if time.time() > slot_time + interval:
        return "stale"  # expired in the queue: a later slot is due already
    clusters = {
        c.pk: c
        for c in Cluster.objects.filter(pk__in=cluster_ids, heartbeat_interval=interval).select_related(
            "primary", "secondary"
        )
    }
    state = HeartbeatState()
    skewed = skewed_servers(state)
    views = [ClusterView.of(cluster) for cluster in clusters.values()]
    probes = asyncio.run(_probe_all(state, views, slot, slot_time, skewed))
    results: Counter = Counter()
    latencies = []
    for probe in probes:
        for server_probe in (probe.primary, probe.secondary):
            result = (
                "answered"
                if server_probe.via_heartbeat.answered
                else "intranet_only"
                if server_probe.answered
                else "missed"
            )
            results[result] += 1
            if server_probe.answered:
                latencies.append(server_probe.answer.rtt)
        try:
            SlotEvaluator(state, clusters[probe.cluster.id], probe).run()
        except Exception:
            log.exception("heartbeat evaluation of cluster %s failed", probe.cluster.name)
    metrics.record_probes(results, latencies)
    return f"{len(probes)} clusters"


async def _probe_all(state, views, slot, slot_time, skewed):
    async with AgentClient() as client:
        return await asyncio.gather(*(probe_slot(client, state, view, slot, slot_time, skewed) for view in views))


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
        configure_cluster.apply_async((cluster_id,), countdown=5)
        return "retrying"
    Server.objects.filter(pk=cluster.primary_id).update(role=Role.PRIMARY)
    Server.objects.filter(pk=cluster.secondary_id).update(role=Role.SECONDARY)
    from .lifecycle import initial_sync

    initial_sync(cluster)
    return "configured"


@shared_task(ignore_result=True)
def reconcile_secondary(cluster_id: int) -> str:
    """A returning server (an old primary, a wiped appliance) becomes secondary at the current epoch."""
    cluster = Cluster.objects.select_related("primary", "secondary").filter(pk=cluster_id).first()
    if cluster is None or cluster.state == ClusterState.FAILING_OVER or cluster.failover_request is not None:
        return "failover in progress"
    answer = send_role(cluster, cluster.secondary, RoleCommand(Role.SECONDARY, cluster.epoch, peer=cluster.primary))
    if answer.ok:
        Server.objects.filter(pk=cluster.secondary_id).update(role=Role.SECONDARY)
        return "configured"
    return f"not configured: {answer.error or answer.body}"
