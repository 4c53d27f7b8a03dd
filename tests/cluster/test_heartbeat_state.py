"""Grants, fences and slots in Redis (DESIGN §4a rules 2, 3 and 9, §4.3), on the real test Redis."""

import asyncio

import pytest

from cluster.heartbeat.state import SlotEntry
from tests.support.heartbeat_state import state_without

CLUSTER, SERVER, PEER = 990_001, 990_002, 990_003


LOOP = asyncio.new_event_loop()  # one loop for the module: its Redis client stays on it


def count(state, slot: int, slot_time: float, answered: bool):
    """SERVER's count for one slot, through the batch evaluation the heartbeat worker uses."""
    entry = SlotEntry(CLUSTER, SERVER, answered, PEER, True, slot_time)
    return LOOP.run_until_complete(state.acount_slots([entry]))[0].primary


@pytest.fixture
def state():
    return state_without("dms:*:99000*")


def test_nothing_is_granted_before_the_fence_is_loaded(state):
    assert state.record_grant(CLUSTER, 1, 1000.0) == (False, "no fence loaded")


def test_a_grant_is_recorded_before_it_is_sent_and_refused_below_the_fence(state):
    state.load_fence(CLUSTER, 1)

    before = state.now()
    assert state.record_grant(CLUSTER, 1, 1000.0)[0] is True
    recorded = state.grant_bound(CLUSTER)
    state.set_fence(CLUSTER, 2)
    assert state.record_grant(CLUSTER, 1, 1002.0) == (False, "fenced at epoch 2")
    # On Redis's clock, not the sender's `sent_at`: one clock for every control-plane host.
    assert before <= recorded <= state.now()
    assert state.grant_bound(CLUSTER) == recorded


def test_a_granter_stops_at_a_slot_without_answer_and_resumes_after_one(state):
    state.load_fence(CLUSTER, 1)
    state.set_granting(CLUSTER, False)

    assert state.record_grant(CLUSTER, 1, 1000.0)[0] is False
    state.set_granting(CLUSTER, True)
    assert state.record_grant(CLUSTER, 1, 1001.0)[0] is True


def test_after_a_redis_loss_the_wait_counts_from_the_fence_reload(state):
    state.load_fence(CLUSTER, 1)
    state.record_grant(CLUSTER, 1, 1000.0)
    state.redis.delete(f"dms:fence:{CLUSTER}", f"dms:grant:{CLUSTER}")  # what a restart loses

    reloaded = state.now()
    state.load_fence(CLUSTER, 2)

    assert state.grant_bound(CLUSTER) >= reloaded
    assert state.load_fence(CLUSTER, 1) == 2  # a reload never lowers a loaded fence


def test_each_slot_counts_once_and_stale_slots_not_at_all(state):
    assert count(state, 10, 10.0, answered=False).misses == 1
    assert count(state, 10, 10.0, answered=False).counted is False
    assert count(state, 9, 9.0, answered=False).counted is False
    third = count(state, 12, 12.0, answered=False)

    assert (third.misses, third.first_miss_at) == (2, 10.0)
    answered = count(state, 13, 13.0, answered=True)
    assert (answered.misses, answered.answers) == (0, 1)


def test_last_seen_times_are_flushed_to_the_database_in_bulk(db, state):
    from cluster.tasks import flush_last_seen
    from tests.factories import ServerFactory

    heard, silent = ServerFactory(), ServerFactory()
    state.redis.hset(f"dms:srv:{heard.pk}", "last_answer_at", "1764100000.5")

    assert flush_last_seen() == 1

    heard.refresh_from_db()
    silent.refresh_from_db()
    assert heard.last_heartbeat_at.timestamp() == 1764100000.5 and silent.last_heartbeat_at is None
    assert flush_last_seen() == 0  # nothing newer: nothing written


def test_slots_of_a_longer_interval_are_counted_after_a_shorter_one(state):
    # Slot numbers are the slot time over the interval: 1 s → 2 s halves them. Staleness is judged
    # by the slot's time, or nothing would be counted after the change.
    assert count(state, 1_000_000, 1_000_000.0, answered=True).counted
    assert count(state, 500_001, 1_000_002.0, answered=False).misses == 1
    assert count(state, 500_002, 1_000_004.0, answered=False).misses == 2
    assert not count(state, 1_000_003, 1_000_003.0, answered=False).counted  # older than the last counted
