"""Celery tasks of the control plane. Queues (settings.CELERY_TASK_ROUTES): `heartbeat` for the
dispatcher and probes, `failover` for failovers, `default` for the rest."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from asyncio import FIRST_COMPLETED
from collections import Counter, defaultdict
from datetime import UTC, datetime

import uvloop
from celery import shared_task
from celery.signals import worker_process_shutdown
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from . import agent_config, metrics, replication_schedule, retention
from .choices import ClusterState
from .failover import Failover
from .heartbeat import CountedSlots, evaluate_counted, slot_entries
from .heartbeat_state import HeartbeatState
from .models import Cluster, ReplicationJob, Server
from .probe import GrantRecorder, SlotProbe, load_views, probe_slot
from .probe_client import ProbeClient

log = logging.getLogger(__name__)

DISPATCH_EVERY_S = 1.0  # beat's period for dispatch_heartbeats
WINDOW_S = DISPATCH_EVERY_S + 0.5  # each dispatch schedules the slots of the next window
# Clusters per probe_batch task. 1,000 rather than 500: the fixed costs of a task (its rows' query,
# Celery, the last answers of the batch awaited) are paid half as often: 10,000 appliances, one
# process: 8,500 → 9,600 probes/s sustained (bench/heartbeat.py).
BATCH = 1000


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
    # After a Redis restart nothing is granted until the fences are back from the database (§4a.3).
    state.ensure_fences({cluster_id: fence for cluster_id, _, fence in rows})
    by_interval: dict[float, list[int]] = defaultdict(list)
    for cluster_id, interval, _ in rows:
        by_interval[interval].append(cluster_id)
    sent = 0
    for interval, ids in by_interval.items():
        # From the slot under way: a dispatch that ran late (behind probe batches on a busy worker)
        # still sends the slot that no earlier dispatch claimed, for what is left of it.
        first, last = math.floor(now / interval), math.floor((now + WINDOW_S) / interval)
        for slot in range(first, last + 1):
            if not state.claim_slot_group(interval, slot):
                continue
            slot_time = slot * interval
            batches = [ids[start : start + BATCH] for start in range(0, len(ids), BATCH)]
            # Each slot starts with another batch: when the heartbeat workers are too few, the batches
            # that expire unprobed are spread over every cluster, not always the same ones.
            turn = slot % len(batches)
            for batch in batches[turn:] + batches[:turn]:
                probe_batch.apply_async((interval, slot, batch), eta=_at(slot_time), expires=_at(slot_time + interval))
                sent += 1
    _resume_failovers()
    return sent


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


@shared_task(ignore_result=True)
def flush_last_seen() -> int:
    """The periodic flush of last-seen times (DESIGN §4.6), off the heartbeat queue: one UPDATE
    statement per thousand servers heard since the last flush. The values are named by a common
    table expression, which PostgreSQL and SQLite (the demo's database) both accept; a column list
    on a VALUES alias (`AS v(id, at)`) is PostgreSQL's only."""
    state = HeartbeatState()
    servers = list(Server.objects.values_list("id", "last_heartbeat_at"))
    seen = state.last_answers([sid for sid, _ in servers])
    changed = [
        (server_id, _at(seen[server_id]))
        for server_id, stored in servers
        if server_id in seen and (stored is None or _at(seen[server_id]) > stored)
    ]
    table = Server._meta.db_table
    row = "(%s::bigint, %s::timestamptz)" if connection.vendor == "postgresql" else "(%s, %s)"
    with connection.cursor() as cursor:
        for start in range(0, len(changed), 1000):
            chunk = changed[start : start + 1000]
            values = ", ".join([row] * len(chunk))
            sql = f"WITH v(id, at) AS (VALUES {values}) UPDATE {table} SET last_heartbeat_at = v.at FROM v"
            params = [p for server_id, at in chunk for p in (server_id, connection.ops.adapt_datetimefield_value(at))]
            cursor.execute(f"{sql} WHERE {table}.id = v.id", params)
    return len(changed)


@shared_task(ignore_result=True)
def probe_batch(interval: float, slot: int, cluster_ids: list[int]) -> str:
    slot_time = slot * interval
    if time.time() > slot_time + interval:
        return "stale"  # expired in the queue: a later slot is due already
    views = load_views(cluster_ids, interval)
    state = HeartbeatState()
    skewed = state.skewed()
    writes = state.redis.pipeline(transaction=False)
    loop = _event_loop()
    chunks = CountedChunks(state, len(views), CHUNK)
    probing = loop.create_task(_probe_all(state, views, slot, slot_time, skewed, writes, chunks))
    results: Counter = Counter()
    latencies = []
    # Each chunk of answers is counted in Redis from the event loop, then evaluated while the loop
    # stands still and the requests already sent are answered meanwhile: the agents, Redis and this
    # process work at the same time.
    try:
        while counted := loop.run_until_complete(chunks.next(probing)):
            writes.execute()
            for chunk in counted:
                _tally(chunk.probes, results, latencies)
                evaluate_counted(
                    state,
                    chunk,
                    lambda p: log.exception("heartbeat evaluation of cluster %s failed", p.cluster.name),
                    skewed=skewed,
                )
    finally:
        if not probing.done():  # this batch failed: none of its probes goes on into the next one
            probing.cancel()
            loop.run_until_complete(asyncio.wait([probing]))
    metrics.record_probes(results, latencies)
    return f"{len(views)} clusters"


# One event loop and one ProbeClient per worker process, kept across batches, so that connections
# to the agents are reused (keep-alive) instead of opened anew for every probe of every slot.
_LOOP: asyncio.AbstractEventLoop | None = None
_CLIENT: ProbeClient | None = None


@worker_process_shutdown.connect
def _close_client(**kwargs) -> None:
    if _CLIENT is not None and _LOOP is not None and not _LOOP.is_closed():
        _LOOP.run_until_complete(_CLIENT.close())


def _event_loop() -> asyncio.AbstractEventLoop:
    global _LOOP, _CLIENT
    if _LOOP is None or _LOOP.is_closed():
        _LOOP, _CLIENT = uvloop.new_event_loop(), None
    return _LOOP


# At most this many clusters in flight: each one's grant is recorded and stamped (sent_at) only when
# it gets its turn, so that a grant's age on arrival is the network's and the agent's, not the time
# the batch's other requests took (max_grant_delay is 0.25 s). 128 rather than 64: more answers per
# pass of the event loop, 11 % more probes per second from one process (p99 latency 70 ms, no grant
# refused; bench/heartbeat.py).
IN_FLIGHT = 128


CHUNK = 100  # clusters counted and evaluated at a time, while the next ones' requests are answered


class CountedChunks:
    """Slot probes as they complete, counted in Redis (`aevaluate_slots`) a chunk at a time from the
    event loop, and handed out once counted."""

    def __init__(self, state: HeartbeatState, total: int, chunk: int):
        self.state = state
        self.total = total
        self.chunk = chunk
        self.completed = self.finished = 0
        self.ready: list[SlotProbe] = []  # completed, not yet sent to be counted
        self.counted: list[CountedSlots] = []  # counted, not yet handed out
        self.counting: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks
        self.error: BaseException | None = None
        self.wake: asyncio.Future | None = None

    def add(self, probe: SlotProbe) -> None:
        self.ready.append(probe)
        self.completed += 1
        if len(self.ready) >= self.chunk or self.completed == self.total:
            task = asyncio.ensure_future(self._count(self.ready))
            self.counting.add(task)
            task.add_done_callback(self.counting.discard)
            self.ready = []

    async def _count(self, probes: list[SlotProbe]) -> None:
        try:
            entries, readings = slot_entries(probes)
            slot_states = await self.state.aevaluate_slots(entries)  # before self.counted is read
            self.counted.append(CountedSlots(probes, entries, readings, slot_states))
            self.finished += len(probes)
        except Exception as error:  # Redis down: the batch fails as it would have in one piece
            self.error = error
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def next(self, probing: asyncio.Task) -> list[CountedSlots]:
        """What was counted since the last call; [] once every probe was; the error that stopped
        the probing or the counting."""
        while not self.counted and self.error is None and self.finished < self.total:
            self.wake = asyncio.get_running_loop().create_future()
            await asyncio.wait({self.wake} | ({probing} if not probing.done() else set()), return_when=FIRST_COMPLETED)
            if probing.done() and not probing.cancelled() and probing.exception() is not None:
                raise probing.exception()
        if self.error is not None:
            raise self.error
        counted, self.counted = self.counted, []
        return counted


async def _probe_all(state, views, slot, slot_time, skewed, writes, chunks: CountedChunks) -> None:
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = ProbeClient()
    grants = GrantRecorder(state)
    waiting = iter(views)

    async def prober():  # IN_FLIGHT of these take the clusters in turn: no task per cluster
        for view in waiting:
            chunks.add(await probe_slot(_CLIENT, grants, view, slot, slot_time, skewed, writes))

    await asyncio.gather(*(prober() for _ in range(min(IN_FLIGHT, len(views)))))


def _tally(probes: list[SlotProbe], results: Counter, latencies: list[float]) -> None:
    """Each server's probe result and latency, for /metrics."""
    for probe in probes:
        for server_probe in (probe.primary, probe.secondary):
            if server_probe.via_heartbeat.answered:
                results["answered"] += 1
            else:
                results["intranet_only" if server_probe.answered else "missed"] += 1
            if server_probe.answered:
                latencies.append(server_probe.answer.rtt)


@shared_task(ignore_result=True, acks_late=True)
def run_failover(cluster_id: int) -> str:
    return Failover(cluster_id).run()


@shared_task(ignore_result=True)
def configure_cluster(cluster_id: int) -> str:
    """A new cluster: both agents configured at epoch 1 (DESIGN §5, "Cluster created")."""
    return _queue_next(configure_cluster, agent_config.configure(cluster_id), cluster_id)


@shared_task(ignore_result=True)
def push_settings(cluster_id: int, acknowledged_at: float | None = None) -> str:
    """A change of timing, sent to both agents until acknowledged (agent_config.push_settings)."""
    return _queue_next(push_settings, agent_config.push_settings(cluster_id, acknowledged_at), cluster_id)


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
