"""One heartbeat slot of many clusters, probed concurrently (DESIGN §5, §4a rules 1, 2 and 4).

The primary is sent a grant recorded right before it leaves; when its heartbeat URL does not answer,
its intranet URL is tried at once with a new grant, stamped and recorded as that attempt leaves
(`SlotGrants`). The secondary is probed (lease 0) and reports what it sees of the primary over the
heartbeat link.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from .. import failover_rules as rules
from ..agent_client import AgentAnswer
from .high_rate_client import ProbeClient
from .state import HeartbeatState
from .views import ClusterView, ServerView


@dataclass
class ServerProbe:
    via_heartbeat: AgentAnswer
    via_intranet: AgentAnswer | None = None

    @property
    def answer(self) -> AgentAnswer | None:
        """The answer that counts: the heartbeat URL's, else the intranet URL's."""
        if self.via_heartbeat.answered:
            return self.via_heartbeat
        if self.via_intranet is not None and self.via_intranet.answered:
            return self.via_intranet
        return None

    @property
    def answered(self) -> bool:
        return self.answer is not None

    @property
    def heartbeat_link_failed(self) -> bool:
        return not self.via_heartbeat.answered and self.answered


@dataclass
class SlotProbe:
    cluster: ClusterView
    slot: int
    slot_time: float
    primary: ServerProbe
    secondary: ServerProbe
    grant: dict = field(default_factory=dict)


def probe_timeout(interval: float) -> float:
    """Under the interval, so that a slot's result is in before the next slot's probe."""
    return max(0.1, min(interval * 0.45, 1.5))


async def _probe_server(client: ProbeClient, server: ServerView, body_for, timeout: float) -> ServerProbe:
    """The heartbeat URL, then at once the intranet URL; `body_for()` makes each attempt's body
    once its connection is up, as it leaves (for the primary, a grant stamped and recorded then:
    "every attempt is a new grant", docs/protocol.md)."""
    first = await client.call("POST", server.heartbeat_url, "/v1/heartbeat", server.token, body_for, timeout)
    if first.answered:
        return ServerProbe(first)
    second = await client.call("POST", server.intranet_url, "/v1/heartbeat", server.token, body_for, timeout)
    return ServerProbe(first, second)


class SlotGrants:
    """The grants of one primary's slot. Each attempt (heartbeat URL, then intranet URL) is a grant
    of its own, stamped and recorded once its connection is up, right before it leaves: a retry
    that re-sent the first attempt's grant would arrive older than the first attempt's timeout
    (0.9 s at the default interval), over `max_grant_delay` (0.25 s), and be refused — the
    primary would stop serving on a cut heartbeat link. Nothing is recorded for a connection that
    was refused, so nothing has to be undone for it."""

    def __init__(self, recorder: GrantRecorder, cluster: ClusterView, may: bool, reason: str):
        self.recorder = recorder
        self.cluster = cluster
        self.may = may
        self.reason = reason  # why no grant (the first attempt's), "" when granted
        self.sent = 0  # grants recorded and sent
        self.last: dict = {}

    async def body(self) -> dict:
        sent_at = time.time()
        lease = 0.0
        if self.may:
            recorded, detail = await self.recorder.record(self.cluster.id, self.cluster.epoch, sent_at)
            if recorded:
                lease = self.cluster.lease_s
                self.sent += 1
            elif not self.sent and not self.last:
                self.reason = detail
        self.last = {"epoch": self.cluster.epoch, "lease_s": lease, "sent_at": sent_at}
        return self.last


class GrantRecorder:
    """Grants recorded in Redis in one round trip for all the clusters that take their turn in the
    same pass of the event loop (they come in bursts, as answers free turns), instead of one round
    trip each. Each grant keeps its own `sent_at`, stamped when its cluster asked."""

    def __init__(self, state: HeartbeatState):
        self.state = state
        self.pending: list[tuple[int, int, float, asyncio.Future]] = []
        self.flushes: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def record(self, cluster_id: int, epoch: int, sent_at: float) -> tuple[bool, str]:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((cluster_id, epoch, sent_at, future))
        if len(self.pending) == 1:  # the flush runs after the other coroutines that are ready now
            flush = asyncio.ensure_future(self._flush())
            self.flushes.add(flush)
            flush.add_done_callback(self.flushes.discard)
        return await future

    async def _flush(self) -> None:
        batch, self.pending = self.pending, []
        try:
            answers = await self.state.arecord_grants([(cluster_id, epoch, at) for cluster_id, epoch, at, _ in batch])
        except Exception as error:  # Redis down: every grant of the batch fails, none is sent
            for *_, future in batch:
                future.set_exception(error)
            return
        for (*_, future), answer in zip(batch, answers, strict=True):
            future.set_result(answer)


def may_grant(cluster: ClusterView, skewed: set[int]) -> bool:
    return rules.may_grant(cluster.epoch, cluster.grant_fence_epoch, cluster.primary.id in skewed)


async def probe_slot(
    client: ProbeClient,
    grants: GrantRecorder,
    cluster: ClusterView,
    slot: int,
    slot_time: float,
    skewed: set[int],
    writes,
) -> SlotProbe:
    """Probe one cluster's two appliances for one slot. Each grant is recorded and stamped right
    before it leaves, so its age on arrival is the network's, not the batch's nor a first
    attempt's timeout. `writes`: a Redis pipeline for the writes after the answer (the caller
    executes it)."""
    timeout = probe_timeout(cluster.interval)
    may = may_grant(cluster, skewed)
    reason = (
        "" if may else "the primary's clock is skewed" if cluster.primary.id in skewed else "fenced in the database"
    )
    slot_grants = SlotGrants(grants, cluster, may, reason)

    async def probe_only() -> dict:
        return {"epoch": cluster.epoch, "lease_s": 0, "sent_at": time.time()}

    primary_call = asyncio.ensure_future(_probe_server(client, cluster.primary, slot_grants.body, timeout))
    secondary = await _probe_server(client, cluster.secondary, probe_only, timeout)  # meanwhile
    primary = await primary_call
    state = grants.state
    if not primary.answered and slot_grants.may and not slot_grants.reason:
        # A granter stops at its first slot without an answer and resumes when the primary answers.
        state.set_granting(cluster.id, False, client=writes)
    elif slot_grants.reason.startswith("stopped") and primary.answered:
        state.set_granting(cluster.id, True, client=writes)
    return SlotProbe(
        cluster, slot, slot_time, primary, secondary, {**slot_grants.last, "refused_reason": slot_grants.reason}
    )
