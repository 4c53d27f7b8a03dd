"""One heartbeat batch, in one straight line (DESIGN §5): snapshot → probe → count → evaluate →
decisions, for up to `BATCH` clusters of one slot.

The clusters are read in one query, then up to `IN_FLIGHT` probers take them in turn on the worker's
event loop. Answers are counted in Redis a chunk at a time from the loop (`CountedChunks`), then
evaluated and carried out while the loop stands still and the requests already sent are answered
meanwhile: the agents, Redis and this process work at the same time. What is to be queued goes to
the caller's `queue` as soon as it is decided: the Celery tasks are the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import uvloop

from .. import metrics
from .apply import SlotWriter
from .decisions import Queued
from .evaluate import Slot, evaluate
from .high_rate_client import ProbeClient
from .incidents import Incidents
from .probe import GrantRecorder, SlotProbe, probe_slot
from .readings import Readings, read_slot
from .snapshot import load_views
from .state import HeartbeatState, SlotEntry, SlotState
from .views import ClusterView

log = logging.getLogger(__name__)

# Clusters per batch. 1,000 rather than 500: the fixed costs of a task (its rows' query, Celery,
# the last answers of the batch awaited) are paid half as often: 10,000 appliances, one process:
# 8,500 → 9,600 probes/s sustained (bench/heartbeat.py).
BATCH = 1000
# At most this many clusters in flight: each one's grant is recorded and stamped (sent_at) only when
# it gets its turn, so that a grant's age on arrival is the network's and the agent's, not the time
# the batch's other requests took (max_grant_delay is 0.25 s). 128 rather than 64: more answers per
# pass of the event loop, 11 % more probes per second from one process (p99 latency 70 ms, no grant
# refused; bench/heartbeat.py).
IN_FLIGHT = 128
CHUNK = 100  # clusters counted and evaluated at a time, while the next ones' requests are answered

# One event loop and one ProbeClient per worker process, kept across batches, so that connections
# to the agents are reused (keep-alive) instead of opened anew for every probe of every slot.
_LOOP: asyncio.AbstractEventLoop | None = None
_CLIENT: ProbeClient | None = None


def run_batch(interval: float, slot: int, cluster_ids: list[int], queue: Callable[[Queued], None]) -> str:
    """The batch of `cluster_ids` for this slot; "stale" when its slot passed while it was queued (a
    stale probe never counts as a miss)."""
    slot_time = slot * interval
    if time.time() > slot_time + interval:
        return "stale"  # expired in the queue: a later slot is due already
    views = load_views(cluster_ids, interval)  # snapshot
    state = HeartbeatState()
    skewed = state.skewed()
    writes = state.redis.pipeline(transaction=False)
    loop = _event_loop()
    chunks = CountedChunks(state, len(views), CHUNK)
    # probe, each chunk of answers counted as it completes
    probing = loop.create_task(_probe_all(state, views, slot, slot_time, skewed, writes, chunks))
    results: Counter = Counter()
    latencies: list[float] = []
    try:
        while counted := loop.run_until_complete(chunks.next(probing)):
            writes.execute()
            for chunk in counted:
                _tally(chunk.probes, results, latencies)
                evaluate_counted(state, chunk, skewed, queue)  # evaluate → decisions, carried out
    finally:
        if not probing.done():  # this batch failed: none of its probes goes on into the next one
            probing.cancel()
            loop.run_until_complete(asyncio.wait([probing]))
    metrics.record_probes(results, latencies)
    return f"{len(views)} clusters"


def close_client() -> None:
    """At the worker process's shutdown: its kept connections closed."""
    if _CLIENT is not None and _LOOP is not None and not _LOOP.is_closed():
        _LOOP.run_until_complete(_CLIENT.close())


def _event_loop() -> asyncio.AbstractEventLoop:
    global _LOOP, _CLIENT
    if _LOOP is None or _LOOP.is_closed():
        _LOOP, _CLIENT = uvloop.new_event_loop(), None
    return _LOOP


async def _probe_all(state, views: list[ClusterView], slot, slot_time, skewed, writes, chunks: CountedChunks) -> None:
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = ProbeClient()
    client, grants, waiting = _CLIENT, GrantRecorder(state), iter(views)

    async def prober():  # IN_FLIGHT of these take the clusters in turn: no task per cluster
        for view in waiting:
            chunks.add(await probe_slot(client, grants, view, slot, slot_time, skewed, writes))

    await asyncio.gather(*(prober() for _ in range(min(IN_FLIGHT, len(views)))))


# -- count ----------------------------------------------------------------------------------------


@dataclass
class CountedSlots:
    """Probes of a chunk with their readings, and what `HeartbeatState.acount_slots` read and wrote
    for them."""

    probes: list[SlotProbe]
    readings: list[Readings]
    slot_states: list[SlotState]


def slot_entry(probe: SlotProbe, readings: Readings) -> SlotEntry:
    """What a probe counts in Redis: both servers' outcomes and the streaks its readings bump."""
    view = probe.cluster
    return SlotEntry(
        view.id, view.primary.id, probe.primary.answered, view.secondary.id, probe.secondary.answered,
        probe.slot_time, readings.streaks,
    )  # fmt: skip


class CountedChunks:
    """Slot probes as they complete, counted in Redis (`acount_slots`) a chunk at a time from the
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
            readings = [read_slot(probe) for probe in probes]
            entries = [slot_entry(probe, reading) for probe, reading in zip(probes, readings, strict=True)]
            slot_states = await self.state.acount_slots(entries)  # before self.counted is read
            self.counted.append(CountedSlots(probes, readings, slot_states))
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
            if probing.done() and not probing.cancelled() and (error := probing.exception()) is not None:
                raise error
        if self.error is not None:
            raise self.error
        counted, self.counted = self.counted, []
        return counted


# -- evaluate and carry out ------------------------------------------------------------------------


def evaluate_counted(
    state: HeartbeatState, counted: CountedSlots, skewed: set[int], queue: Callable[[Queued], None]
) -> None:
    """Every counted probe evaluated and its decisions carried out; one cluster's failure is logged
    and does not stop the others'. The steady state is done with the counts already read; a
    transition reads and writes Redis and the database on its own."""
    rows = zip(counted.probes, counted.readings, counted.slot_states, strict=True)
    for probe, readings, slot_state in rows:
        if not slot_state.primary.counted:
            continue  # a stale probe: this slot, or a later one, was counted already
        view = probe.cluster
        try:
            primary = Incidents(state, view.primary.id, slot_state.open_primary)
            secondary = Incidents(state, view.secondary.id, slot_state.open_secondary)
            slot = Slot(
                probe, slot_state.primary, slot_state.secondary, slot_state.streaks, readings,
                primary.open_set(), secondary.open_set(), skewed,
            )  # fmt: skip
            decisions = evaluate(slot)
            incidents = {view.primary.id: primary, view.secondary.id: secondary}
            SlotWriter(state, view, incidents, skewed, queue).apply(decisions)
        except Exception:
            log.exception("heartbeat evaluation of cluster %s failed", view.name)


def _tally(probes: list[SlotProbe], results: Counter, latencies: list[float]) -> None:
    """Each server's probe result and latency, for /metrics."""
    for probe in probes:
        for server_probe in (probe.primary, probe.secondary):
            if server_probe.via_heartbeat.answered:
                results["answered"] += 1
            else:
                results["intranet_only" if server_probe.answered else "missed"] += 1
            if server_probe.answer is not None:
                latencies.append(server_probe.answer.rtt)
