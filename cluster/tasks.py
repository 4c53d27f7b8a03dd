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
from typing import Any

import uvloop
from celery import shared_task
from celery.signals import worker_process_shutdown
from django.db import connection
from django.db.models import Count, F, Q
from django.utils import timezone

from . import metrics, retention
from .choices import ClusterState, Role, ServerState, StepKind
from .failover import Failover
from .failover_rules import disagreement
from .heartbeat import CountedSlots, evaluate_counted, slot_entries
from .heartbeat_state import HeartbeatState
from .incident_log import record_step
from .models import Cluster, ReplicationJob, Server
from .probe import GrantRecorder, SlotProbe, load_views, probe_slot
from .probe_client import ProbeClient
from .role_commands import RoleCommand, send_role
from .role_commands import probe as probe_agent

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
    return (cluster.lease_bound_s or 0.0) + cluster.max_grant_delay + cluster.max_clock_skew


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


def _replication_due(cluster: Any, failures: int, now) -> bool:  # a Cluster row from with_last_job
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
