"""Heartbeat state in Redis (DESIGN §4.6): counters per server, grants and fences per cluster.

The database is written on transitions only; everything a probe touches on every slot lives here.
Each multi-key decision is one Lua script, so concurrent probe tasks and failover tasks see it
happen at once (DESIGN §4a rules 2 and 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from dms_admin.redis import async_redis_client, redis_client

PREFIX = "dms:"


def fence_key(cluster_id: int) -> str:
    return f"{PREFIX}fence:{cluster_id}"


def grant_key(cluster_id: int) -> str:
    return f"{PREFIX}grant:{cluster_id}"


def server_key(server_id: int) -> str:
    return f"{PREFIX}srv:{server_id}"


def link_key(cluster_id: int) -> str:
    return f"{PREFIX}link:{cluster_id}"


# "Unless fenced for this cluster, record now and return sent_at" (§4a.2). Answers
# {1, previous sent_at} when recorded, {0, reason} when no grant may be sent.
_RECORD_GRANT = """
local fence = redis.call('HGET', KEYS[1], 'epoch')
if not fence then return {0, 'no fence loaded'} end
if tonumber(ARGV[1]) < tonumber(fence) then return {0, 'fenced at epoch ' .. fence} end
if redis.call('HGET', KEYS[2], 'stopped') == '1' then return {0, 'stopped: no answer in the last slot'} end
local previous = redis.call('HGET', KEYS[2], 'sent_at') or ''
if previous == '' or tonumber(ARGV[2]) > tonumber(previous) then
  redis.call('HSET', KEYS[2], 'sent_at', ARGV[2], 'epoch', ARGV[1])
end
return {1, previous}
"""

# A refused connection proves the grant never left: put back the previous record, unless a later
# grant was recorded meanwhile.
_UNDO_GRANT = """
if redis.call('HGET', KEYS[1], 'sent_at') == ARGV[1] then
  if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'sent_at') else redis.call('HSET', KEYS[1], 'sent_at', ARGV[2]) end
end
return 1
"""

# Set the fence. A fence put into a Redis that had none (first use, or after a restart that lost
# it) records when: grants before that moment are unknown (§4a.9).
_SET_FENCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'loaded_at', ARGV[2])
elseif ARGV[3] == 'force' then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
end
return redis.call('HGET', KEYS[1], 'epoch')
"""

# Count one heartbeat slot for a server, once: a slot at or before the last counted one is stale.
# Answers {counted, consecutive misses, first missed slot time, consecutive answers}.
_COUNT_SLOT = """
local last = tonumber(redis.call('HGET', KEYS[1], 'slot') or '-1')
if tonumber(ARGV[1]) <= last then return {0, 0, '', 0} end
redis.call('HSET', KEYS[1], 'slot', ARGV[1])
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'misses', 0, 'first_miss', '', 'last_answer_at', ARGV[2])
  local answers = redis.call('HINCRBY', KEYS[1], 'answers', 1)
  return {1, 0, '', answers}
end
redis.call('HSET', KEYS[1], 'answers', 0)
local misses = redis.call('HINCRBY', KEYS[1], 'misses', 1)
if misses == 1 then redis.call('HSET', KEYS[1], 'first_miss', ARGV[2]) end
return {1, misses, redis.call('HGET', KEYS[1], 'first_miss'), 0}
"""


@dataclass
class SlotCount:
    counted: bool
    misses: int
    first_miss_at: float | None
    answers: int


class HeartbeatState:
    def __init__(self, client=None):
        self.redis = client or redis_client()
        self._record = self.redis.register_script(_RECORD_GRANT)
        self._undo = self.redis.register_script(_UNDO_GRANT)
        self._fence = self.redis.register_script(_SET_FENCE)
        self._count = self.redis.register_script(_COUNT_SLOT)

    # -- grants and fences ---------------------------------------------------------------------
    async def arecord_grant(self, cluster_id: int, epoch: int, now: float) -> tuple[bool, str]:
        """`record_grant` from the probes' event loop, without blocking the other probes' I/O."""
        client = async_redis_client()
        args = (2, fence_key(cluster_id), grant_key(cluster_id), epoch, repr(now))
        try:
            recorded, detail = await client.evalsha(self._record.sha, *args)
        except redis.exceptions.NoScriptError:  # first use, or a restarted Redis forgot it: EVAL caches it
            recorded, detail = await client.eval(_RECORD_GRANT, *args)
        return bool(recorded), detail.decode() if isinstance(detail, bytes) else str(detail)

    def record_grant(self, cluster_id: int, epoch: int, now: float) -> tuple[bool, str]:
        """Record a grant before sending it; (False, reason) means send none (lease_s 0)."""
        recorded, detail = self._record(keys=[fence_key(cluster_id), grant_key(cluster_id)], args=[epoch, repr(now)])
        return bool(recorded), detail.decode() if isinstance(detail, bytes) else str(detail)

    def count_slots(self, items: list[tuple[int, int, float, bool]]) -> list[SlotCount]:
        """`count_slot` for many servers in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for server_id, slot, slot_time, answered in items:
            args = [slot, repr(slot_time), "1" if answered else "0"]
            self._count(keys=[server_key(server_id)], args=args, client=pipe)
        return [SlotCount(bool(c), int(m), float(f) if f else None, int(a)) for c, m, f, a in pipe.execute()]

    def undo_grant(self, cluster_id: int, sent_at: float, previous: str, client=None) -> None:
        self._undo(keys=[grant_key(cluster_id)], args=[repr(sent_at), previous], client=client)

    def set_granting(self, cluster_id: int, granting: bool, client=None) -> None:
        (client or self.redis).hset(grant_key(cluster_id), "stopped", "0" if granting else "1")

    def load_fence(self, cluster_id: int, epoch: int, now: float) -> int:
        """Put the database's fence into Redis if Redis has none (after a restart)."""
        return int(self._fence(keys=[fence_key(cluster_id)], args=[epoch, repr(now), ""]))

    def set_fence(self, cluster_id: int, epoch: int, now: float) -> None:
        self._fence(keys=[fence_key(cluster_id)], args=[epoch, repr(now), "force"])

    def has_fence(self, cluster_id: int) -> bool:
        return bool(self.redis.exists(fence_key(cluster_id)))

    def grant_bound(self, cluster_id: int) -> float:
        """The latest moment the control plane may have sent a grant for this cluster: its last
        recorded grant, or when this Redis first held the fence if that is later."""
        sent_at, loaded_at = (
            self.redis.hget(grant_key(cluster_id), "sent_at"),
            self.redis.hget(fence_key(cluster_id), "loaded_at"),
        )
        return max(float(sent_at or 0), float(loaded_at or 0))

    # -- slots ---------------------------------------------------------------------------------
    def count_slot(self, server_id: int, slot: int, slot_time: float, answered: bool) -> SlotCount:
        return self.count_slots([(server_id, slot, slot_time, answered)])[0]

    def last_answers(self, server_ids: list[int]) -> dict[int, float]:
        pipe = self.redis.pipeline()
        for server_id in server_ids:
            pipe.hget(server_key(server_id), "last_answer_at")
        return {sid: float(v) for sid, v in zip(server_ids, pipe.execute(), strict=True) if v}

    def claim_slot_group(self, interval: float, slot: int) -> bool:
        """One dispatch of a slot per interval group, however many dispatchers run."""
        return bool(self.redis.set(f"{PREFIX}slotgroup:{interval}:{slot}", 1, nx=True, ex=60))
