"""A heartbeat batch counts its answers in Redis a chunk at a time while the rest are in flight
(cluster.heartbeat.batch.CountedChunks), on the real test Redis: every answer is counted and evaluated once,
and a batch whose probing fails stops with that error instead of leaving the heartbeat worker
waiting for answers that never come."""

import asyncio

import pytest

from cluster.agent_client import AgentAnswer
from cluster.heartbeat.batch import CountedChunks
from cluster.heartbeat.probe import ServerProbe, SlotProbe
from cluster.heartbeat.views import ClusterView, ServerView
from tests.support.heartbeat_state import state_without

FIRST_ID = 991_000  # clusters 991000…, servers 992000… (apart from the other tests' keys)


def _probe(n: int, slot: int) -> SlotProbe:
    def server(i):
        return ServerView(992_000 + i, f"sim-{i}", "http://127.0.0.1:1", "http://127.0.0.1:1", "t", "up", "primary")

    view = ClusterView(
        FIRST_ID + n, f"c{n}", 1, 1, 1.0, 2.0, 3, 2, 0.1, 0.25, "healthy", False, True, False, True,
        server(2 * n), server(2 * n + 1),
    )  # fmt: skip
    answer = AgentAnswer(200, {"role": "primary", "epoch": 1}, sent_wall=slot, received_wall=slot + 0.001)
    return SlotProbe(view, slot, float(slot), ServerProbe(answer), ServerProbe(answer))


@pytest.fixture
def state():
    return state_without("dms:*:99[12]*")


def _drain(loop, chunks, probing):
    handed = []
    while counted := loop.run_until_complete(chunks.next(probing)):
        handed.extend(counted)
    return handed


def test_every_answer_is_counted_once_in_chunks_while_the_others_are_in_flight(state):
    loop = asyncio.new_event_loop()
    chunks = CountedChunks(state, total=25, chunk=10)

    async def probe_all():
        for n in range(25):
            await asyncio.sleep(0)
            chunks.add(_probe(n, slot=1000))

    probing = loop.create_task(probe_all())
    handed = _drain(loop, chunks, probing)
    loop.run_until_complete(probing)
    loop.close()
    probes = [probe.cluster.id - FIRST_ID for counted in handed for probe in counted.probes]
    assert sorted(probes) == list(range(25))
    # Two chunks may be counted at once (each on its own Redis connection): in either order.
    assert sorted(len(counted.probes) for counted in handed) == [5, 10, 10]
    states = [slot_state for counted in handed for slot_state in counted.slot_states]
    assert all(s.primary.counted and s.secondary.counted and s.primary.answers == 1 for s in states)


def test_a_batch_whose_probing_fails_stops_with_the_error(state):
    loop = asyncio.new_event_loop()
    chunks = CountedChunks(state, total=10, chunk=5)

    async def probe_all():
        chunks.add(_probe(0, slot=1000))
        await asyncio.sleep(0)
        raise ConnectionError("Redis went away while grants were recorded")

    probing = loop.create_task(probe_all())
    with pytest.raises(ConnectionError, match="Redis went away"):
        _drain(loop, chunks, probing)
    loop.close()


def test_an_empty_batch_hands_out_nothing(state):
    loop = asyncio.new_event_loop()
    chunks = CountedChunks(state, total=0, chunk=5)

    async def nothing():
        return None

    probing = loop.create_task(nothing())
    assert _drain(loop, chunks, probing) == []
    loop.run_until_complete(probing)
    loop.close()
