"""A Redis that restarted is recognised by its run id, not by missing keys: one restored from a
snapshot comes back holding old fences and grant records, which a lease wait must not trust.
Before the fix, `load_fences` kept the snapshot's fence (and its old `loaded_at`) and the old grant
record stood as the last grant sent."""

import shutil

import pytest
import redis

from cluster.heartbeat.state import HeartbeatState, fence_key
from tests.support.agents import free_port
from tests.support.redis_server import PrivateRedis

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")

CLUSTER = 424242


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    server.start()
    yield server
    server.stop()


def _state(server: PrivateRedis) -> HeartbeatState:
    return HeartbeatState(redis.Redis(host=server.host, port=server.port))


def test_a_redis_restored_from_a_snapshot_counts_grants_from_the_fences_reload(private_redis):
    state = _state(private_redis)
    state.ensure_fences({CLUSTER: 1})
    assert state.record_grant(CLUSTER, 1, 1005.0)[0]
    stale = state.grant_bound(CLUSTER)
    private_redis.snapshot()  # a fence and the record of a grant
    assert state.record_grant(CLUSTER, 1, 1010.0)[0]  # a later grant: lost with the restart

    private_redis.restart(from_snapshot=True)
    state = _state(private_redis)
    assert state.grant_bound(CLUSTER) == stale  # the snapshot's stale record is back
    reloaded = state.now()
    state.ensure_fences({CLUSTER: 1})

    assert float(state.redis.hget(fence_key(CLUSTER), "loaded_at")) >= reloaded
    assert state.grant_bound(CLUSTER) >= reloaded  # not the stale record: counted from the reload


def test_the_same_redis_keeps_its_fences_and_records(private_redis):
    state = _state(private_redis)
    state.ensure_fences({CLUSTER: 1})
    assert state.record_grant(CLUSTER, 1, 1005.0)[0]
    recorded = state.grant_bound(CLUSTER)

    state.ensure_fences({CLUSTER: 1})

    assert state.grant_bound(CLUSTER) == recorded


def test_an_empty_restarted_redis_grants_nothing_until_the_fences_are_back(private_redis):
    state = _state(private_redis)
    state.ensure_fences({CLUSTER: 1})
    private_redis.restart()
    state = _state(private_redis)

    assert state.record_grant(CLUSTER, 1, 1010.0) == (False, "no fence loaded")
    reloaded = state.now()
    state.ensure_fences({CLUSTER: 1})
    assert state.grant_bound(CLUSTER) >= reloaded
