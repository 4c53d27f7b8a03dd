"""The heartbeat's Redis state for tests that use ids of their own (apart from the other tests')."""

from cluster.heartbeat.state import HeartbeatState
from dms_admin.redis import redis_client


def state_without(pattern: str) -> HeartbeatState:
    """A HeartbeatState on the test Redis, with the keys matching `pattern` deleted first."""
    client = redis_client()
    keys = client.keys(pattern)
    if keys:
        client.delete(*keys)
    return HeartbeatState(client)
