"""The heartbeat's state in Redis (DESIGN §4.6): every key the heartbeat and the failover pipeline
share, and the scripts that change them.

The database is written on transitions only; everything a probe touches on every slot lives here:
counters and streaks per server, grants and fences per cluster, the open incidents, the skewed set.
Each multi-key decision is one Lua script (`scripts/*.lua`), so concurrent probe tasks and failover
tasks see it happen at once (DESIGN §4a rules 2 and 3). Payloads to and from the scripts are keyed
by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import redis

from alerts.choices import FAILURE_OF, EventType
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
    """A server's slot counters and its skew and lease streaks."""
    return f"{PREFIX}srv:{server_id}"


def link_key(cluster_id: int) -> str:
    """A cluster's heartbeat-link and control-plane-clock streaks."""
    return f"{PREFIX}link:{cluster_id}"


def open_key(server_id: int) -> str:
    """The failures open for a server (incidents.py)."""
    return f"{PREFIX}open:{server_id}"


def incident_key(event_type: str, name: str = "") -> str:
    """A failure's field in its server's open set: a recovery names the failure it ends."""
    failure = FAILURE_OF.get(EventType(event_type), event_type)
    return f"{failure}:{name}" if name else str(failure)


def reconcile_key(cluster_id: int) -> str:
    """Held 5 s while a secondary's reconcile task is queued: one at a time."""
    return f"{PREFIX}reconcile:{cluster_id}"


def slot_group_key(interval: float, slot: int) -> str:
    return f"{PREFIX}slotgroup:{interval}:{slot}"


def owner_key(cluster_id: int) -> str:
    """The failover worker that holds a cluster's claim, and its step (for tests and operators)."""
    return f"{PREFIX}owner:{cluster_id}"


def paused_key(cluster_id: int) -> str:
    """A test's pause of a cluster's failover at a step (FAILOVER_TEST_PAUSES only)."""
    return f"{PREFIX}paused:{cluster_id}"


def _script(name: str) -> str:
    return (Path(__file__).parent / "scripts" / f"{name}.lua").read_text()


_REDIS_NOW = _script("redis_now")
RECORD_GRANTS = _REDIS_NOW + _script("record_grants")
SET_FENCES = _REDIS_NOW + _script("set_fences")
COUNT_SLOTS = _script("count_slots")

# Streaks by name, and where each is kept: (whose key, field prefix). A bump increments the field
# of the reading ("bad" or "good") and resets the other one.
STREAKS = {
    "primary_skew": ("primary", "skew_"),
    "secondary_skew": ("secondary", "skew_"),
    "dark": ("primary", "dark_"),
    "link": ("link", ""),
    "control_plane_skew": ("link", "cpskew_"),
}


@dataclass
class SlotCount:
    counted: bool
    misses: int
    first_miss_at: float | None
    answers: int


@dataclass
class SlotEntry:
    """One cluster's slot to count: both servers' outcomes and the streaks its answers bump, each
    (streak name, bad)."""

    cluster_id: int
    primary_id: int
    primary_answered: bool
    secondary_id: int
    secondary_answered: bool
    slot_time: float
    streaks: list[tuple[str, bool]] = field(default_factory=list)


@dataclass
class SlotState:
    """What `acount_slots` read and wrote for one cluster; `streaks` (by name) are empty when the
    primary's count was stale (nothing was bumped)."""

    primary: SlotCount
    secondary: SlotCount
    streaks: dict[str, int]
    open_primary: dict[str, str]
    open_secondary: dict[str, str]


# (streak name, bad) → (whose key, field to increment, field to reset)
_BUMPS = {
    (name, bad): (whose, prefix + ("bad" if bad else "good"), prefix + ("good" if bad else "bad"))
    for name, (whose, prefix) in STREAKS.items()
    for bad in (True, False)
}


def _slot_payload(e: SlotEntry) -> dict:
    keys = {"primary": server_key(e.primary_id), "secondary": server_key(e.secondary_id)}
    bumps = []
    for streak in e.streaks:
        whose, up, reset = _BUMPS[streak]
        key = keys[whose] if whose in keys else link_key(e.cluster_id)
        bumps.append({"key": key, "field": up, "reset": reset})
    return {
        "at": repr(e.slot_time),
        "primary": keys["primary"],
        "primary_answered": e.primary_answered,
        "secondary": keys["secondary"],
        "secondary_answered": e.secondary_answered,
        "bumps": bumps,
        "primary_open": open_key(e.primary_id),
        "secondary_open": open_key(e.secondary_id),
    }


def _slots_payload(entries: list[SlotEntry]) -> str:
    return json.dumps([_slot_payload(e) for e in entries], separators=(",", ":"))


def _slot_states(entries: list[SlotEntry], answer) -> list[SlotState]:
    return [
        SlotState(
            _slot_count(out["primary"]),
            _slot_count(out["secondary"]),
            dict(zip([name for name, _ in entry.streaks], out["streaks"] or [], strict=False)),  # {} when empty
            _pairs(out["open_primary"]),
            _pairs(out["open_secondary"]),
        )
        for entry, out in zip(entries, json.loads(answer), strict=True)
    ]


def _slot_count(values: dict) -> SlotCount:
    first_miss = values["first_miss"]
    first_miss_at = float(first_miss) if first_miss else None
    return SlotCount(bool(values["counted"]), int(values["misses"]), first_miss_at, int(values["answers"]))


def _pairs(flat) -> dict[str, str]:
    flat = flat or []  # cjson writes an empty table as {}
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class HeartbeatState:
    def __init__(self, client=None):
        self.redis = client or redis_client()
        self._record = self.redis.register_script(RECORD_GRANTS)
        self._fences = self.redis.register_script(SET_FENCES)
        self._count = self.redis.register_script(COUNT_SLOTS)

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

    # -- the skewed set ------------------------------------------------------------------------
    def skewed(self) -> set[int]:
        return {int(member) for member in self.redis.smembers(SKEWED_SET)}

    def mark_skewed(self, server_id: int) -> None:
        self.redis.sadd(SKEWED_SET, server_id)

    def unmark_skewed(self, server_id: int) -> bool:
        """True when the server was in the set (one worker closes the incident)."""
        return bool(self.redis.srem(SKEWED_SET, server_id))

    # -- slots ---------------------------------------------------------------------------------
    async def acount_slots(self, entries: list[SlotEntry]) -> list[SlotState]:
        """The steady-state reads and writes of a batch of slots, in one round trip, from the probes'
        event loop while the other probes' answers come in."""
        if not entries:
            return []
        return _slot_states(entries, await self._aeval(self._count, [], [_slots_payload(entries)]))

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
        return bool(self.redis.set(slot_group_key(interval, slot), 1, nx=True, ex=60))

    def claim_reconcile(self, cluster_id: int) -> bool:
        """One queued reconcile of a cluster's secondary at a time (5 s)."""
        return bool(self.redis.set(reconcile_key(cluster_id), 1, nx=True, ex=5))
