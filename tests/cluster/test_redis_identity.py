"""A Redis that restarted is recognised by its run id, not by missing keys: one restored from a
snapshot comes back holding old fences and grant records, which a lease wait must not trust.
Before the fix, `load_fences` kept the snapshot's fence (and its old `loaded_at`) and the old grant
record stood as the last grant sent."""

import shutil

import pytest
import redis

from cluster.heartbeat_state import HeartbeatState, fence_key, grant_key
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
    state.ensure_fences({CLUSTER: 1}, 1000.0)
    assert state.record_grant(CLUSTER, 1, 1005.0)[0]
    private_redis.snapshot()  # fence loaded at 1000, last grant at 1005
    assert state.record_grant(CLUSTER, 1, 1010.0)[0]  # a later grant: lost with the restart

    private_redis.restart(from_snapshot=True)
    state = _state(private_redis)
    assert state.redis.hget(grant_key(CLUSTER), "sent_at") == b"1005.0"  # the snapshot's stale record
    state.ensure_fences({CLUSTER: 1}, 1020.0)

    assert float(state.redis.hget(fence_key(CLUSTER), "loaded_at")) == 1020.0
    assert state.grant_bound(CLUSTER) == 1020.0  # not 1005: grants are counted from the reload


def test_the_same_redis_keeps_its_fences_and_records(private_redis):
    state = _state(private_redis)
    state.ensure_fences({CLUSTER: 1}, 1000.0)
    assert state.record_grant(CLUSTER, 1, 1005.0)[0]

    state.ensure_fences({CLUSTER: 1}, 1020.0)

    assert state.grant_bound(CLUSTER) == 1005.0


def test_an_empty_restarted_redis_grants_nothing_until_the_fences_are_back(private_redis):
    state = _state(private_redis)
    state.ensure_fences({CLUSTER: 1}, 1000.0)
    private_redis.restart()
    state = _state(private_redis)

    assert state.record_grant(CLUSTER, 1, 1010.0) == (False, "no fence loaded")
    state.ensure_fences({CLUSTER: 1}, 1020.0)
    assert state.grant_bound(CLUSTER) == 1020.0
