"""Heartbeat state in Redis (DESIGN §4.6): counters per server, grants and fences per cluster.

The database is written on transitions only; everything a probe touches on every slot lives here.
Each multi-key decision is one Lua script, so concurrent probe tasks and failover tasks see it
happen at once (DESIGN §4a rules 2 and 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from dms_admin.redis import async_redis_client, redis_client

PREFIX = "dms:"
SKEWED_SET = f"{PREFIX}skewed"  # servers whose clock is off: no grants to them, no failover onto them
# The run id of the Redis that holds this state. A Redis whose run id differs restarted, even if it
# reloaded a snapshot: the grant records and fences it holds may be stale (DESIGN amendment "Redis
# restarts are detected by identity", docs/protocol.md).
BOOT_KEY = f"{PREFIX}boot"


def fence_key(cluster_id: int) -> str:
    return f"{PREFIX}fence:{cluster_id}"


def grant_key(cluster_id: int) -> str:
    return f"{PREFIX}grant:{cluster_id}"


def server_key(server_id: int) -> str:
    return f"{PREFIX}srv:{server_id}"


def link_key(cluster_id: int) -> str:
    return f"{PREFIX}link:{cluster_id}"


def open_key(server_id: int) -> str:
    """The failures open for a server (cluster/incidents.py)."""
    return f"{PREFIX}open:{server_id}"


# Times kept for lease waits are Redis's own clock (TIME), one clock for every control-plane host:
# a failover worker on a host whose clock runs ahead of the heartbeat worker's would otherwise end
# a wait early (docs/protocol.md, "Skew is blamed pairwise": control-plane hosts).
_REDIS_NOW = """
local t = redis.call('TIME')
local now = string.format('%d.%06d', t[1], t[2])
"""

# "Unless fenced for this cluster, record now" (§4a.2), for each (fence key, grant key) pair in KEYS
# and (epoch, sent_at) pair in ARGV: `recorded_at` on Redis's clock (what a lease wait counts from),
# `sent_at` as the grant carries it (evidence). Answers {1, ''} per pair when recorded, {0, reason}
# when no grant may be sent.
_RECORD_GRANTS = (
    _REDIS_NOW
    + """
local function record(fence_key, grant_key, epoch, sent_at)
  local fence = redis.call('HGET', fence_key, 'epoch')
  if not fence then return {0, 'no fence loaded'} end
  if tonumber(epoch) < tonumber(fence) then return {0, 'fenced at epoch ' .. fence} end
  if redis.call('HGET', grant_key, 'stopped') == '1' then return {0, 'stopped: no answer in the last slot'} end
  redis.call('HSET', grant_key, 'recorded_at', now, 'sent_at', sent_at, 'epoch', epoch)
  return {1, ''}
end
local out = {}
for i = 1, #KEYS / 2 do
  local answer = record(KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 * i - 1], ARGV[2 * i])
  out[2 * i - 1], out[2 * i] = answer[1], answer[2]
end
return out
"""
)

# Set the fences of KEYS to the epochs ARGV[2…] (ARGV[1] = 'force' or not). A fence put into a Redis
# that had none (first use, or after a restart) records when, on Redis's clock: grants before that
# moment are unknown (§4a.9). Without 'force' an existing fence is kept. Answers the epochs held.
_SET_FENCES = (
    _REDIS_NOW
    + """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'epoch', ARGV[i + 1], 'loaded_at', now)
  elseif ARGV[1] == 'force' then
    redis.call('HSET', key, 'epoch', ARGV[i + 1])
  end
  held[i] = redis.call('HGET', key, 'epoch')
end
return held
"""
)

# Count one heartbeat slot for a server, once: a slot whose time is at or before the last counted
# one's is stale. By time, not by number: a slot's number is its time divided by the interval, so
# after a longer interval every new number is lower than the last one counted.
# Answers {counted, consecutive misses, first missed slot time, consecutive answers}.
_COUNT_FUNCTION = """
local function count(key, at, answered)
  local last = tonumber(redis.call('HGET', key, 'slot_at') or '-1')
  if tonumber(at) <= last then return {0, 0, '', 0} end
  redis.call('HSET', key, 'slot_at', at)
  if answered then
    redis.call('HSET', key, 'misses', 0, 'first_miss', '', 'last_answer_at', at)
    return {1, 0, '', redis.call('HINCRBY', key, 'answers', 1)}
  end
  redis.call('HSET', key, 'answers', 0)
  local misses = redis.call('HINCRBY', key, 'misses', 1)
  if misses == 1 then redis.call('HSET', key, 'first_miss', at) end
  return {1, misses, redis.call('HGET', key, 'first_miss'), 0}
end
"""

# A whole batch's steady state in one call, its entries JSON-encoded in ARGV[1] (one Redis command
# instead of about ten per cluster: the worker's own CPU, not Redis, bounds the probes per second).
# Per cluster: count the slot for both servers; if the primary's count is not stale, bump each
# streak (HINCRBY the field, reset its opposite); read both servers' open incidents. Keys travel
# inside the JSON: this needs a single Redis, not Redis Cluster (DESIGN §4.6).
_EVALUATE_SLOTS = (
    _COUNT_FUNCTION
    + """
local out = {}
for i, e in ipairs(cjson.decode(ARGV[1])) do
  local at = e[6]
  local primary = count(e[1], at, e[2] == 1)
  local secondary = count(e[3], at, e[4] == 1)
  local streaks = {}
  if primary[1] == 1 then
    for j, bump in ipairs(e[7]) do
      streaks[j] = redis.call('HINCRBY', bump[1], bump[2], 1)
      redis.call('HSET', bump[1], bump[3], 0)
    end
  end
  out[i] = {primary, secondary, streaks, redis.call('HGETALL', e[8]), redis.call('HGETALL', e[9])}
end
return cjson.encode(out)
"""
)


@dataclass
class SlotCount:
    counted: bool
    misses: int
    first_miss_at: float | None
    answers: int


@dataclass
class SlotEntry:
    """One cluster's slot to count: both servers' outcomes and the streaks its answers bump, each
    (key, field to increment, field to reset)."""

    primary_id: int
    primary_answered: bool
    secondary_id: int
    secondary_answered: bool
    slot: int
    slot_time: float
    bumps: list[tuple[str, str, str]]


@dataclass
class SlotState:
    """What `aevaluate_slots` read and wrote for one cluster; `streaks` follow the entry's bumps and
    are empty when the primary's count was stale (nothing was bumped)."""

    primary: SlotCount
    secondary: SlotCount
    streaks: list[int]
    open_primary: dict[str, str]
    open_secondary: dict[str, str]


def _slots_payload(entries: list[SlotEntry]) -> str:
    return json.dumps(
        [
            [
                server_key(e.primary_id), int(e.primary_answered), server_key(e.secondary_id),
                int(e.secondary_answered), e.slot, repr(e.slot_time), e.bumps,
                open_key(e.primary_id), open_key(e.secondary_id),
            ]
            for e in entries
        ],
        separators=(",", ":"),
    )  # fmt: skip


def _slot_states(answer) -> list[SlotState]:
    return [
        SlotState(
            _slot_count(primary),
            _slot_count(secondary),
            list(streaks) if streaks else [],  # cjson writes an empty table as {}
            _pairs(open_primary),
            _pairs(open_secondary),
        )
        for primary, secondary, streaks, open_primary, open_secondary in json.loads(answer)
    ]


def _slot_count(values) -> SlotCount:
    counted, misses, first_miss, answers = values
    return SlotCount(bool(counted), int(misses), float(first_miss) if first_miss else None, int(answers))


def _pairs(flat) -> dict[str, str]:
    flat = flat or []  # cjson writes an empty table as {}
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class HeartbeatState:
    def __init__(self, client=None):
        self.redis = client or redis_client()
        self._record = self.redis.register_script(_RECORD_GRANTS)
        self._fences = self.redis.register_script(_SET_FENCES)
        self._evaluate = self.redis.register_script(_EVALUATE_SLOTS)

    # -- grants and fences ---------------------------------------------------------------------
    async def arecord_grants(self, grants: list[tuple[int, int, float]]) -> list[tuple[bool, str]]:
        """`record_grant` for many (cluster id, epoch, sent_at) at once, from the probes' event loop
        and without blocking the other probes' I/O."""
        keys = [key for cluster_id, _, _ in grants for key in (fence_key(cluster_id), grant_key(cluster_id))]
        args = [arg for _, epoch, now in grants for arg in (epoch, repr(now))]
        flat = await self._aeval(self._record, keys, args)
        return [(bool(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]

    def record_grant(self, cluster_id: int, epoch: int, now: float) -> tuple[bool, str]:
        """Record a grant before sending it; (False, reason) means send none (lease_s 0)."""
        recorded, detail = self._record(keys=[fence_key(cluster_id), grant_key(cluster_id)], args=[epoch, repr(now)])
        return bool(recorded), _text(detail)

    def set_granting(self, cluster_id: int, granting: bool, client=None) -> None:
        (client or self.redis).hset(grant_key(cluster_id), "stopped", "0" if granting else "1")

    def load_fences(self, epochs: dict[int, int]) -> dict[int, int]:
        """Put the database's fences into Redis where Redis has none (after a restart), in one call
        however many clusters; answers the fence each cluster holds."""
        if not epochs:
            return {}
        keys = [fence_key(cluster_id) for cluster_id in epochs]
        held = self._fences(keys=keys, args=["", *epochs.values()])
        return {cluster_id: int(epoch) for cluster_id, epoch in zip(epochs, held, strict=True)}

    def load_fence(self, cluster_id: int, epoch: int) -> int:
        return self.load_fences({cluster_id: epoch})[cluster_id]

    def set_fence(self, cluster_id: int, epoch: int) -> None:
        self._fences(keys=[fence_key(cluster_id)], args=["force", epoch])

    def ensure_fences(self, epochs: dict[int, int]) -> dict[int, int]:
        """`load_fences`, after forgetting every fence, grant record and open-incident set when
        this Redis is not the one that held them: a restart loses the records of grants sent before
        it, and a snapshot brings back old ones, which would end a lease wait too early. Grants are
        then counted from the moment each fence is loaded again (its `loaded_at`)."""
        run_id = self.identity()
        if _text(self.redis.get(BOOT_KEY) or b"") != run_id:
            # Open incidents too: they are rebuilt from the events in the database (incidents.py).
            for pattern in (f"{PREFIX}fence:*", f"{PREFIX}grant:*", f"{PREFIX}open:*"):
                for key in self.redis.scan_iter(match=pattern, count=1000):
                    self.redis.delete(key)
            self.redis.set(BOOT_KEY, run_id)
        return self.load_fences(epochs)

    def now(self) -> float:
        """Redis's clock, the one lease waits count on."""
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    def grant_bound(self, cluster_id: int) -> float:
        """The latest moment, on Redis's clock, the control plane may have sent a grant for this
        cluster: its last recorded grant, or when this Redis first held the fence if that is later."""
        recorded_at, loaded_at = (
            self.redis.hget(grant_key(cluster_id), "recorded_at"),
            self.redis.hget(fence_key(cluster_id), "loaded_at"),
        )
        return max(float(recorded_at or 0), float(loaded_at or 0))

    def identity(self) -> str:
        """This Redis process's run id: new at every start, snapshot or not."""
        return str(self.redis.info("server")["run_id"])

    def skewed(self) -> set[int]:
        return {int(member) for member in self.redis.smembers(SKEWED_SET)}

    # -- slots ---------------------------------------------------------------------------------
    async def aevaluate_slots(self, entries: list[SlotEntry]) -> list[SlotState]:
        """The steady-state reads and writes of a batch of slots, in one round trip, from the probes'
        event loop while the other probes' answers come in."""
        if not entries:
            return []
        return _slot_states(await self._aeval(self._evaluate, [], [_slots_payload(entries)]))

    @staticmethod
    async def _aeval(script, keys: list, args: list):
        """A registered script run on the event loop's client."""
        client = async_redis_client()
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # first use, or a restarted Redis forgot it: EVAL caches it
            return await client.eval(script.script, len(keys), *keys, *args)

    def last_answers(self, server_ids: list[int]) -> dict[int, float]:
        pipe = self.redis.pipeline()
        for server_id in server_ids:
            pipe.hget(server_key(server_id), "last_answer_at")
        return {sid: float(v) for sid, v in zip(server_ids, pipe.execute(), strict=True) if v}

    def claim_slot_group(self, interval: float, slot: int) -> bool:
        """One dispatch of a slot per interval group, however many dispatchers run."""
        return bool(self.redis.set(f"{PREFIX}slotgroup:{interval}:{slot}", 1, nx=True, ex=60))
