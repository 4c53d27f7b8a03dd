"""One Redis client per process, with short timeouts so a dead Redis is noticed, not waited on."""

import asyncio
import weakref
from functools import lru_cache

import redis
import redis.asyncio
from django.conf import settings


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)


# Keyed by the loop itself, weakly: a loop's client goes with the loop, and a new loop never gets
# the client of a closed one that happened to have the same id().
_ASYNC_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_redis_client() -> redis.asyncio.Redis:
    """An asyncio client for the running event loop (a client must stay on the loop it was made on)."""
    loop = asyncio.get_running_loop()
    client = _ASYNC_CLIENTS.get(loop)
    if client is None:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
        _ASYNC_CLIENTS[loop] = client
    return client
