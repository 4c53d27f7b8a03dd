"""The control plane's processes as generators over the model's row and Redis, mirroring
cluster/heartbeat/ (a slot: probe.py, then production's readings.py and evaluate.py),
cluster/failover.py with failover_claim.py and failover_steps.py (a failover worker) and
cluster/agent_config.py (push_settings, reconcile_secondary). Every decision is a call to
`cluster.failover_rules` or `cluster.heartbeat.evaluate`; what is left here is the plumbing: which
I/O happens in which order.

A generator yields a `Call` (or a list of them, sent together) and receives its `Outcome`, or a
`Sleep`, or None (a point where other processes may run: two separate database or Redis operations).
"""

from __future__ import annotations

import math
from dataclasses import replace

from cluster import failover_rules as rules
from cluster.agent_client import AgentAnswer
from cluster.heartbeat import decisions
from cluster.heartbeat.evaluate import Slot, evaluate
from cluster.heartbeat.probe import ServerProbe, SlotProbe
from cluster.heartbeat.readings import read_slot
from cluster.heartbeat.state import SlotCount
from cluster.heartbeat.views import ClusterView, ServerView

from .world import (
    CLAIM_S,
    PROBE_TIMEOUT,
    ROLE_TIMEOUT,
    THRESHOLD,
    Abandoned,
    Call,
    Failed,
    Lost,
    Outcome,
    Sleep,
    World,
)

# -- shared I/O --------------------------------------------------------------------------------------


def probe(world: World, server: str, epoch: int, timeout: float = PROBE_TIMEOUT):
    """role_commands.probe: a heartbeat without a grant."""
    return (yield Call(server, "heartbeat", {"epoch": epoch, "lease_s": 0, "sent_at": world.cp_wall()}, timeout))


def allocate_seq(world: World) -> int:
    world.row.command_seq += 1
    return world.row.command_seq


def adopt(world: World, epoch, seq) -> None:
    row = world.row
    for name, value in rules.adopted(epoch, seq, row.epoch_floor, row.command_seq).items():
        setattr(row, name, value)


def send_role(world: World, snapshot, server: str, role: str, epoch: int, *, peer: str, candidacy=None,
              fresh_grant=None, attempts: int = 3, timeout: float = ROLE_TIMEOUT, before_attempt=None):  # fmt: skip
    """role_commands.send_role: the identical command retried on no answer, a 409 reconciled. Like
    production, a command carries the row's timing read once its seq is allocated, not the caller's
    snapshot's (an older settings change would otherwise outrun a newer one's seq)."""
    seq, timing = allocate_seq(world), replace(world.row)
    yield None
    answer = Outcome()
    for attempt in range(attempts):
        if before_attempt is not None:
            yield from before_attempt()
        extra = {}
        if candidacy is not None:
            extra["candidacy"] = candidacy
        if fresh_grant is not None:
            extra["grant"] = fresh_grant()
        body = world._role_body(role, epoch, seq, peer=peer, row=timing, **extra)
        answer = yield Call(server, "role", body, timeout)
        if answer.ok:
            return answer
        if answer.status == 409:
            if rules.held_by(answer.body, role, epoch, candidacy):
                return replace(answer, status=200)
            adopt(world, answer.body.get("epoch"), answer.body.get("seq"))
            seq, timing = allocate_seq(world), replace(world.row)
            continue
        if answer.answered:
            return answer
        if answer.refused:
            yield Sleep(world.now + min(0.2 * (attempt + 1), 1.0))
    return answer


# -- a heartbeat slot ----------------------------------------------------------------------------------


def dispatch(world: World) -> bool:
    """tasks.dispatch_heartbeats: fences loaded (after a Redis restart), and the slot under way
    started unless it was already (one dispatch per interval and slot, as the Redis claim makes it)."""
    row = world.row
    world.redis.ensure_fences(row.grant_fence_epoch, world.cp_wall())
    slot = current_slot(world)
    if (row.interval, slot) == world.dispatched or (row.interval == world.dispatched[0] and slot < world.dispatched[1]):
        return False
    world.dispatched = (row.interval, slot)
    world.spawn(f"slot{slot}", heartbeat_slot(world, slot, slot * row.interval), kind="slot")
    world.step(len(world.procs) - 1)
    return True


def current_slot(world: World) -> int:
    return math.floor(world.cp_wall() / world.row.interval + EPSILON)


def heartbeat_slot(world: World, slot: int, slot_time: float):
    """heartbeat.probe.probe_slot, then heartbeat.readings and heartbeat.evaluate (production's own
    functions) over the model's counts, for one cluster and one slot."""
    view = replace(world.row)  # snapshot.load_views: the row as the batch read it
    redis = world.redis
    skewed = set(redis.skewed)
    may = rules.may_grant(view.epoch, view.grant_fence_epoch, view.primary in skewed)
    yield None
    sent_at, lease, previous, reason = world.cp_wall(), 0.0, None, ""
    if may:
        recorded, detail = world.redis.record_grant(view.epoch, sent_at)
        if recorded:
            lease, previous = view.lease_s, detail
        else:
            reason = detail
    timeout = max(0.1, min(view.interval * 0.45, 1.5))
    grant = {"epoch": view.epoch, "lease_s": lease, "sent_at": sent_at}
    primary, secondary = yield [
        Call(view.primary, "heartbeat", grant, timeout),
        Call(view.secondary, "heartbeat", {"epoch": view.epoch, "lease_s": 0, "sent_at": world.cp_wall()}, timeout),
    ]
    redis = world.redis  # it may have restarted meanwhile
    if previous is not None and not primary.answered:
        if primary.refused:
            redis.undo_grant(sent_at, previous)
        redis.grant["stopped"] = True
    elif reason.startswith("stopped") and primary.answered:
        redis.grant["stopped"] = False
    yield None
    # Counting (HeartbeatState.acount_slots), then production's own evaluation (heartbeat.evaluate).
    p_count = redis.count(view.primary, slot, slot_time, primary.answered)
    s_count = redis.count(view.secondary, slot, slot_time, secondary.answered)
    if p_count is None:
        return  # a stale slot
    probe = SlotProbe(cluster_view(view), slot, slot_time, server_probe(primary), server_probe(secondary))
    readings = read_slot(probe)
    streaks = {name: bump(redis, view, name, bad) for name, bad in readings.streaks}
    counts = slot_count(p_count), slot_count(s_count)
    # No open incidents: incidents are reports, not decisions of the protocol (not modelled).
    cause = None
    for decision in evaluate(Slot(probe, *counts, streaks, readings, {}, {}, skewed)):
        match decision:
            case decisions.MarkSkewed():
                redis.skewed.add(decision.server.id)
            case decisions.ClockBack():
                redis.skewed.discard(decision.close.server.id)
            case decisions.Adopt():
                adopt(world, decision.epoch, decision.seq)
            case decisions.ReconcileSecondary():
                if not any(proc.kind == "reconcile" for proc in world.procs):
                    world.spawn("reconcile", reconcile_secondary(world), kind="reconcile")
            case decisions.RequestFailover():
                cause = decision.cause
    # Server states (up, down), incidents and the cluster's state are reports: not modelled.
    if cause is not None:
        yield None
        request_failover(world, view, cause)


# Where the model's Redis keeps each streak of heartbeat.state.STREAKS: (whose counters, field).
STREAK_HOLDERS = {
    "primary_skew": ("primary", "skew"),
    "secondary_skew": ("secondary", "skew"),
    "dark": ("primary", "dark"),
    "link": ("link", "link"),
    "control_plane_skew": ("link", "cpskew"),
}


def bump(redis, view, name: str, bad: bool) -> int:
    whose, field_name = STREAK_HOLDERS[name]
    holder = {"primary": view.primary, "secondary": view.secondary}.get(whose, "link")
    return redis.bump(holder, field_name, bad)


def cluster_view(row) -> ClusterView:
    """heartbeat.snapshot.load_views of the model's row: servers by name, states not modelled."""

    def server(name: str, role: str) -> ServerView:
        return ServerView(name, name, "", "", "", "up", role)  # ids are the names here

    return ClusterView(
        id=0, name="model", epoch=row.epoch, grant_fence_epoch=row.grant_fence_epoch, interval=row.interval,
        lease_s=row.lease_s, threshold=THRESHOLD, recovery_threshold=THRESHOLD, max_clock_skew=row.max_clock_skew,
        max_grant_delay=row.max_grant_delay, state=row.state, maintenance=row.maintenance, active=True,
        has_request=row.failover_request is not None, replication_current=True,
        primary=server(row.primary, "primary"), secondary=server(row.secondary, "secondary"),
    )  # fmt: skip


def server_probe(outcome: Outcome) -> ServerProbe:
    """One appliance's outcome as the probe hands it on (one path: no intranet retry modelled)."""
    return ServerProbe(
        AgentAnswer(outcome.status, outcome.body, "", outcome.refused, outcome.sent_wall, outcome.received_wall)
    )


def slot_count(count: dict | None) -> SlotCount:
    if count is None:
        return SlotCount(False, 0, None, 0)  # stale
    return SlotCount(True, count["misses"], count["first_miss"], count["answers"])


def request_failover(world: World, view, cause: str) -> bool:
    """heartbeat.apply.SlotWriter.request_failover: the write-ahead request, a conditional UPDATE."""
    row = world.row
    if not rules.may_request(view.maintenance, True, False):
        return False
    since = None if row.last_failover_at is None else world.cp_wall() - row.last_failover_at
    if rules.damped(cause, since, view.interval):
        return False
    if row.failover_request is None and row.epoch == view.epoch and row.primary == view.primary and not row.maintenance:
        row.failover_request = {
            "cause": cause,
            "server_id": view.primary,
            "seen_epoch": view.epoch,
            "requested_at": world.cp_wall(),
        }
        world.log.append(f"{world.now:.3f} request {cause} at epoch {view.epoch}")
        return True
    return False


def request_switchover(world: World) -> bool:
    """switchover.request_switchover (the API, after its preflight)."""
    row = world.row
    if row.failover_request is not None or row.state == "failing_over":
        return False
    row.failover_request = {
        "cause": "switchover",
        "server_id": row.primary,
        "seen_epoch": row.epoch,
        "requested_at": world.cp_wall(),
    }
    row.claimed_until = None
    return True


# -- tasks -------------------------------------------------------------------------------------------


def reconcile_secondary(world: World):
    """tasks.reconcile_secondary: a returning server becomes secondary at the current epoch."""
    row = world.row
    if row.state == "failing_over" or row.failover_request is not None:
        return
    snapshot = replace(row)
    yield from send_role(world, snapshot, snapshot.secondary, "secondary", snapshot.epoch, peer=snapshot.primary)


def change_settings(world: World, interval: float, lease_s: float) -> None:
    """An operator saves new timing: signals.bound_the_lease_across_a_timing_change, then push_settings."""
    row = world.row
    if (interval, lease_s) == (row.interval, row.lease_s):
        return
    row.lease_bound_s = max(row.longest_lease_s, lease_s)
    row.interval, row.lease_s = interval, lease_s
    row.settings_changed_at = world.cp_wall()
    world.spawn("push_settings", push_settings(world), kind="push")


def push_settings(world: World):
    """tasks.push_settings, retried until both agents hold the settings and the old lease ran out."""
    while True:
        row = world.row
        if row.lease_bound_s is None:
            return
        if row.state == "failing_over" or row.failover_request is not None:
            yield Sleep(world.now + row.interval)
            continue
        snapshot = replace(row)
        held = [(yield from send_role(world, snapshot, snapshot.secondary, "secondary", snapshot.epoch,
                                      peer=snapshot.primary))]  # fmt: skip
        answer = yield from probe(world, snapshot.primary, snapshot.epoch)
        if rules.disagreement(answer.body, snapshot.epoch) == "":
            held.append((yield from send_role(world, snapshot, snapshot.primary, "primary", snapshot.epoch,
                                              peer=snapshot.secondary)))  # fmt: skip
        if len(held) < 2 or not all(a.ok for a in held):
            yield Sleep(world.now + snapshot.interval)
            continue
        # Counted from both acknowledgements: a grant of the old lease may have left just before.
        acknowledged_at = world.cp_wall()
        settled = acknowledged_at + snapshot.lease_bound_s + snapshot.max_grant_delay + snapshot.max_clock_skew
        yield Sleep(world.now + settled - world.cp_wall())
        # Both commands carried the row's settings of this push's start or newer ones; cleared only
        # if those are still the row's: a change since then is a newer push's to settle.
        if world.row.lease_bound_s is not None and world.row.settings_changed_at == snapshot.settings_changed_at:
            world.row.lease_bound_s = None
        return


# -- a failover worker -------------------------------------------------------------------------------


class Worker:
    """failover.Failover: one worker's run, step by step."""

    def __init__(self, world: World):
        self.world = world
        self.token = next(world.tokens)
        self.reached = "claimed"

    @property
    def row(self):
        return self.world.row

    def mine(self) -> bool:
        return self.row.claim_token == self.token and self.row.state == "failing_over"

    def claim(self):
        row, now = self.row, self.world.cp_wall()
        fresh = row.failover_request is not None and row.state != "failing_over"
        fresh = fresh and (row.claimed_until is None or row.claimed_until < now)
        expired = row.state == "failing_over" and row.claimed_until is not None and row.claimed_until < now
        if not (fresh or expired):
            return None
        self.world.claims[self.token] = (row.epoch, row.epoch_floor)
        row.state = "failing_over"
        row.pending_epoch = rules.pending_epoch(row.epoch, row.epoch_floor)
        row.grant_fence_epoch = rules.pending_epoch(row.epoch, row.epoch_floor)
        row.claim_token = self.token
        row.candidacy_id = f"c{self.token}"
        row.step = row.step or "claimed"
        row.claimed_until = now + CLAIM_S
        cluster = replace(row)
        self.reached = cluster.step
        return cluster

    def renew(self, step: str):
        self.reached = rules.later_step(self.reached, step)
        if not self.mine():
            raise Lost(step)
        self.row.step = self.reached
        self.row.claimed_until = self.world.cp_wall() + CLAIM_S
        yield None

    @property
    def committed(self) -> bool:
        return rules.committed_to_promote(self.reached)

    def run(self):
        cluster = self.claim()
        if cluster is None:
            return "not claimed"
        yield None
        self.world.redis.set_fence(cluster.grant_fence_epoch, self.world.cp_wall())
        yield None
        request = cluster.failover_request or {}
        cause = request.get("cause", "missed_heartbeats")
        try:
            if not rules.request_current(request, cluster.epoch, cluster.primary):
                raise Abandoned("the request names an epoch or primary that is no longer current")
            if self.committed:
                answer = yield from probe(self.world, cluster.secondary, cluster.pending_epoch or cluster.epoch)
                if rules.already_promoted(answer.body, cluster.pending_epoch):
                    return (yield from self.commit(cluster, cause))
            yield from self.renew("witness")
            yield from self.cause_stands(cluster, cause)
            yield from self.second_witness(cluster, cause)
            yield from self.renew("candidacy")
            yield from self.cause_stands(cluster, cause)
            last_grant = yield from self.candidacy(cluster)
            yield from self.renew("wait")
            yield from self.wait(cluster, cause, last_grant)
            yield from self.renew("promote")
            yield from self.cause_stands(cluster, cause)
            yield from self.promote(cluster)
            yield from self.renew("commit")
            return (yield from self.commit(cluster, cause))
        except Lost as error:
            self.world.log.append(f"{self.world.now:.3f} lost at {error}")
            return "lost"
        except Abandoned as error:
            self.world.log.append(f"{self.world.now:.3f} abandoned {cause}: {error}")
            yield from self.release(cluster, keep_request=False)
            return "abandoned"
        except Failed as error:
            self.world.log.append(f"{self.world.now:.3f} failed {cause}: {error}")
            yield from self.release(cluster, keep_request=cause != "switchover")
            return "failed"

    def primary_back(self, cluster) -> bool:
        last = self.world.redis.counters(cluster.primary)["last_answer_at"]
        return rules.primary_back(last, (cluster.failover_request or {}).get("requested_at", 0))

    def cause_stands(self, cluster, cause: str):
        if cause not in rules.AUTOMATIC or self.committed:
            return
        maintenance = self.row.maintenance
        answer = None
        if not maintenance and cause in rules.PROBED_CAUSES:
            answer = yield from probe(self.world, cluster.primary, cluster.epoch)
        why = rules.cause_gone(
            cause,
            self.reached,
            maintenance=maintenance,
            epoch=cluster.epoch,
            primary_back=not maintenance and cause == "missed_heartbeats" and self.primary_back(cluster),
            primary_skewed=cause != "clock_skew" or cluster.primary in self.world.redis.skewed,
            primary_answer=answer.body if answer is not None and answer.answered else None,
        )
        if why:
            raise Abandoned(why)

    def second_witness(self, cluster, cause: str):
        answer = yield from probe(self.world, cluster.secondary, cluster.epoch, timeout=min(1.0, cluster.interval))
        refusal = rules.witness_refusal(
            cluster.secondary,
            answer.answered,
            "no answer",
            rules.failing_critical_services(answer.body) if answer.answered else [],
            answer.answered and cluster.secondary in self.world.redis.skewed,
        )
        if refusal:
            raise Failed(refusal)
        peer = answer.body.get("peer") or {}
        needed = rules.secondary_still_hears(cause, self.reached, peer.get("last_answer_age_s"), THRESHOLD,
                                             cluster.interval)  # fmt: skip
        if cause != "missed_heartbeats" or self.committed:
            return
        if needed is not None:
            raise Abandoned("the secondary still hears the primary")
        if self.primary_back(cluster):
            raise Abandoned("the primary answers heartbeats again")

    def candidacy(self, cluster):
        deadline = rules.candidacy_deadline_s(cluster.longest_lease_s, cluster.max_grant_delay,
                                              cluster.max_clock_skew, CLAIM_S)  # fmt: skip
        answer = yield from send_role(
            self.world, cluster, cluster.secondary, "candidate", cluster.epoch, peer=cluster.primary,
            candidacy={"id": cluster.candidacy_id, "deadline_s": round(deadline, 3)},
            before_attempt=lambda: self.renew("candidacy"),
        )  # fmt: skip
        if not answer.ok:
            raise Failed("the secondary refused candidacy")
        return rules.secondary_last_grant(answer.received_wall, answer.body.get("last_grant_sent_age_s"))

    def wait(self, cluster, cause: str, secondary_last_grant: float):
        world = self.world
        if cause != "missed_heartbeats" and (yield from self.demote_old_primary(cluster)):
            return
        while True:
            world.redis.ensure_fences(cluster.grant_fence_epoch, world.cp_wall())
            identity = world.redis.run_id
            yield None
            until = rules.lease_deadline(world.redis.grant_bound(), secondary_last_grant, cluster.longest_lease_s,
                                         cluster.max_grant_delay, cluster.max_clock_skew)  # fmt: skip
            while world.cp_wall() < until:
                yield Sleep(world.now + min(0.1, max(0.0, until - world.cp_wall())) + 1e-9)
                yield from self.renew("wait")
                if cause == "missed_heartbeats" and not self.committed and self.primary_back(cluster):
                    raise Abandoned("the primary answers heartbeats again")
            if world.redis.run_id != identity:
                continue
            fence = world.redis.fence
            over = rules.wait_over(None if fence is None else fence["epoch"], cluster.grant_fence_epoch, self.mine())
            if over == "done":
                return
            if over == "again":
                continue
            raise Lost("wait")

    def promote(self, cluster):
        world = self.world
        pending = cluster.pending_epoch
        world.redis.grant["stopped"] = False
        yield None

        def fresh_grant() -> dict:
            sent_at = world.cp_wall()
            recorded, _ = world.redis.record_grant(pending, sent_at)
            return {"lease_s": cluster.lease_s if recorded else 0.0, "sent_at": sent_at}

        answer = yield from send_role(
            world, cluster, cluster.secondary, "primary", pending, peer=cluster.primary,
            candidacy={"id": cluster.candidacy_id}, fresh_grant=fresh_grant, attempts=5,
            before_attempt=lambda: self.renew("promote"),
        )  # fmt: skip
        if not answer.ok:
            raise Failed("the secondary refused promotion")

    def commit(self, cluster, cause: str):
        world, row = self.world, self.row
        if not self.mine():
            raise Lost("commit")
        start_epoch, start_floor = world.claims[self.token]
        if cluster.pending_epoch != max(start_epoch, start_floor) + 1:
            raise AssertionError("pending epoch is not the claim's epoch or floor + 1")
        row.epoch = cluster.pending_epoch
        row.primary, row.secondary = cluster.secondary, cluster.primary
        row.state = "healthy" if cause == "switchover" else "degraded"
        row.pending_epoch = row.claim_token = row.candidacy_id = row.claimed_until = None
        row.step = ""
        row.failover_request = None
        row.last_failover_at = world.cp_wall()
        world.log.append(f"{world.now:.3f} commit epoch {row.epoch} primary {row.primary} ({cause})")
        world.check_promotion(cluster.pending_epoch, start_epoch, start_floor)
        yield None
        if cause != "switchover":
            yield from self.demote_old_primary(cluster, old=cluster.primary, new=cluster.secondary,
                                               epoch=cluster.pending_epoch)  # fmt: skip
        return "completed"

    def demote_old_primary(self, cluster, *, old=None, new=None, epoch=None):
        old = old or cluster.primary
        new = new or cluster.secondary
        epoch = epoch or cluster.pending_epoch
        answer = yield from send_role(self.world, cluster, old, "secondary", epoch, peer=new, attempts=1, timeout=1.0)
        return answer.ok

    def release(self, cluster, *, keep_request: bool):
        row = self.row
        if row.claim_token != self.token:
            return
        if rules.committed_to_promote(rules.later_step(row.step, self.reached)):
            return  # past the point of no return: the claim expires and the next worker resumes
        current = replace(row)
        yield from send_role(self.world, current, current.secondary, "secondary", current.epoch, peer=current.primary)
        row = self.row
        failures = int((current.failover_request or {}).get("failures", 0))
        backoff = rules.release_backoff_s(failures)
        request = current.failover_request if keep_request else None
        if request is not None:
            request = {**request, "failures": failures + 1}
        if not self.mine():
            return
        row.state = "degraded"
        row.grant_fence_epoch = row.epoch
        row.pending_epoch = row.claim_token = row.candidacy_id = None
        row.step = ""
        row.claimed_until = self.world.cp_wall() + backoff if keep_request else None
        row.failover_request = request
        yield None
        self.world.redis.set_fence(current.epoch, self.world.cp_wall())


def start_worker(world: World) -> None:
    """A failover task: queued on a request, and by the dispatcher for expired claims."""
    worker = Worker(world)
    world.spawn(f"worker{worker.token}", worker.run(), kind="worker")
    world.step(len(world.procs) - 1)


# -- normal operation ------------------------------------------------------------------------------


def run(
    world: World,
    duration: float,
    *,
    delay: float = 0.01,
    cut: frozenset = frozenset(),
    slow: frozenset = frozenset(),
    slow_delay: float = 0.0,
    workers: int = 1,
):
    """Let the system run for `duration` s, from event to event: messages arrive `delay` after they
    leave (`slow_delay` on the `slow` links) unless their link is `cut` (black-holed), agents
    heartbeat their peers, beat dispatches every second, processes run whenever ready, and a
    failover task starts for a request while fewer than `workers` run (faults come from the other
    rules, between runs)."""
    end = world.now + duration
    turns = 0

    def arrival(message) -> float:
        link = (message.src, message.dst)
        if link in cut:
            return world.now
        agent = world.agents.get(message.dst)
        if agent is not None and agent.paused:
            return math.inf  # a stopped process reads nothing
        return message.sent + (slow_delay if link in slow else delay)

    while True:
        events = [end, _next_dispatch(world)]
        events += [arrival(message) for message in world.network]
        events += [_next_peer_event(agent) for agent in world.agents.values()]
        events += [_next_wake(world, proc) for proc in world.procs]
        expiry = math.inf if world.row.claimed_until is None else world.row.claimed_until - world.cp_offset + 1e-6
        if expiry > world.now:  # a timer: once past, a worker starts at the next event if one may
            events.append(expiry)
        world.now = max(world.now, min(events))
        turns += 1
        if turns > 100_000:
            raise RuntimeError(f"the model does not advance at {world.now}: {sorted(events)[:5]}")
        i = 0
        while i < len(world.network):
            message = world.network[i]
            if (message.src, message.dst) in cut:
                world.network.pop(i)
            elif arrival(message) <= world.now:
                world.deliver(i)
            else:
                i += 1
        for name in world.agents:
            world.peer_slot(name)
        dispatch(world)
        ready = world.runnable()
        while ready:
            world.step(ready[0])
            ready = world.runnable()
        running = sum(1 for proc in world.procs if proc.kind == "worker")
        if running < workers and wants_worker(world):
            start_worker(world)
        if world.now >= end:
            return


EPSILON = 1e-9  # past an instant computed on another clock, so that it has surely come


def _next_dispatch(world: World) -> float:
    """Beat runs the dispatcher every second of the control plane's clock; a slot is due at a
    multiple of the interval."""
    second = math.floor(world.cp_wall() + EPSILON) + 1
    slot = (current_slot(world) + 1) * world.row.interval
    return min(second, slot) - world.cp_offset + 1e-6


def _next_peer_event(agent) -> float:
    core = agent.core
    if core is None or agent.paused:
        return math.inf
    if agent.peer_pending is not None:
        result = agent.peer_pending[3:]
        return agent.world.now if result else agent.peer_pending[2]
    if core.role in ("secondary", "candidate") and core.settings.peer_url:
        return agent.peer_next
    return math.inf


def _next_wake(world: World, proc) -> float:
    wait = proc.wait
    if wait is None:
        return world.now
    if isinstance(wait, Sleep):
        return wait.until
    return max(deadline for _, deadline in wait)


def wants_worker(world: World) -> bool:
    row = world.row
    if row.state == "failing_over":
        return row.claimed_until is not None and row.claimed_until < world.cp_wall()
    return row.failover_request is not None and (row.claimed_until is None or row.claimed_until < world.cp_wall())
