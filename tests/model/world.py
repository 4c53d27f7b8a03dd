"""A model of one cluster in virtual time: two real `AgentCore`s, a network, a simulated Redis and
database row, and the control plane's processes (heartbeat slots, failover workers, settings pushes,
reconciliations) written as generators that decide only through `cluster.failover_rules`.

Time is one true timeline, `World.now`. Every clock is a function of it:

- an agent's monotonic clock is `now + mono_offset` (rate 1; it survives a process restart, as
  CLOCK_MONOTONIC does on one host);
- an agent's wall clock, and the control plane's, is `now + wall_offset`, the offset within
  ±max_clock_skew/2 of true time and moving at most `SLEW` s per s (NTP slews; it does not step).

Assumptions (the protocol's, docs/protocol.md; the model keeps within them):

1. Clock offsets as above; no agent is declared skewed (an appliance whose clock leaves the bound is
   the skew detector's business, tested on real processes in tests/failover/test_clock_skew.py).
2. Any message may be lost, duplicated, reordered or delayed without bound; a grant that arrives
   later than `max_grant_delay` by the receiver's wall clock is refused by the agent itself.
3. "Connection refused" is only ever reported for a request none of whose copies reached a live
   agent (it proves the request never left, which is what undoing a grant record relies on).
4. A paused agent handles nothing and sends nothing; its clocks go on. Its lease runs out on its
   own monotonic clock, and it is counted as serving while that lease runs (the conservative side).
5. A crash loses everything but the agent's persisted state (its `persist` dict) and its host's
   monotonic clock; a crashed control-plane worker loses its generator, its claim stays until it
   expires.
6. Redis and the database row are each atomic per operation (Lua scripts, conditional UPDATEs);
   separate operations of one process are separate steps that others may interleave with.
7. One control-plane clock (the hosts agree); critical services always pass; one network path to
   each agent (the intranet retry is not modelled).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from agent.core import AgentCore, BadRequest, Refused
from agent.peer import IDLE_POLL_S
from cluster import failover_rules as rules

QUIET = logging.getLogger("model.agent")
QUIET.setLevel(logging.WARNING)
QUIET.propagate = False

CLAIM_S = 5.0  # cluster.failover.claim_seconds() at its default
SLEW = 0.0005  # the fastest a wall clock may move against true time, s per s (NTP's limit)
THRESHOLD = 3  # missed_heartbeats_threshold
ROLE_TIMEOUT = 2.0  # send_role's timeout
PROBE_TIMEOUT = 1.0  # role_commands.probe's timeout
REFUSED = "refused"


class Violation(AssertionError):
    """An invariant of the protocol does not hold."""


class Lost(Exception):
    """Another worker owns the failover now."""


class Failed(Exception):
    pass


class Abandoned(Failed):
    pass


@dataclass
class Message:
    id: int
    request: int  # the request this copy belongs to (duplicates share it)
    kind: str  # heartbeat | role | answer
    src: str
    dst: str
    body: dict
    sent: float


@dataclass
class Outcome:
    """What a caller learns of one request: an answer, a refused connection, or nothing (timeout)."""

    status: int = 0
    body: dict = field(default_factory=dict)
    refused: bool = False
    sent_wall: float = 0.0
    received_wall: float = 0.0
    rtt: float = 0.0

    @property
    def answered(self) -> bool:
        return self.status > 0

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Call:
    dst: str
    kind: str
    body: dict
    timeout: float


@dataclass
class Sleep:
    until: float  # true time


@dataclass
class Process:
    name: str
    gen: Any
    wait: Any = None  # None: runnable now; Sleep; or a list of (request id, deadline, sent true, sent wall)
    kind: str = ""


@dataclass
class Row:
    """The cluster's database row (the fields the protocol uses)."""

    epoch: int = 1
    primary: str = "A"
    secondary: str = "B"
    state: str = "healthy"
    interval: float = 2.0
    lease_s: float = 4.0
    max_grant_delay: float = 0.25
    max_clock_skew: float = 0.1
    maintenance: bool = False
    command_seq: int = 0
    epoch_floor: int = 0
    lease_bound_s: float | None = None
    settings_changed_at: float | None = None
    grant_fence_epoch: int = 1
    failover_request: dict | None = None
    pending_epoch: int | None = None
    claim_token: int | None = None
    candidacy_id: str | None = None
    step: str = ""
    claimed_until: float | None = None
    last_failover_at: float | None = None

    @property
    def longest_lease_s(self) -> float:
        return rules.longest_lease_s(self.lease_s, self.lease_bound_s)


@dataclass
class Redis:
    """The keys the protocol keeps in Redis, and the scripts it runs on them (cluster/heartbeat/state.py)."""

    run_id: int
    fence: dict | None = None  # {"epoch", "loaded_at"}
    grant: dict = field(default_factory=dict)  # {"sent_at", "epoch", "stopped"}
    servers: dict = field(default_factory=dict)  # name -> counters and streaks
    skewed: set = field(default_factory=set)
    boot: int | None = None
    cp_streak: dict = field(default_factory=dict)

    def record_grant(self, epoch: int, now: float) -> tuple[bool, str]:  # _RECORD_GRANTS
        if self.fence is None:
            return False, "no fence loaded"
        if epoch < self.fence["epoch"]:
            return False, f"fenced at epoch {self.fence['epoch']}"
        if self.grant.get("stopped"):
            return False, "stopped: no answer in the last slot"
        previous = self.grant.get("sent_at")
        if previous is None or now > previous:
            self.grant.update(sent_at=now, epoch=epoch)
        return True, "" if previous is None else repr(previous)

    def undo_grant(self, sent_at: float, previous: str) -> None:  # _UNDO_GRANT
        if self.grant.get("sent_at") == sent_at:
            if previous == "":
                self.grant.pop("sent_at", None)
            else:
                self.grant["sent_at"] = float(previous)

    def set_fence(self, epoch: int, now: float, force: bool = True) -> int:  # _SET_FENCES
        if self.fence is None:
            self.fence = {"epoch": epoch, "loaded_at": now}
        elif force:
            self.fence["epoch"] = epoch
        return self.fence["epoch"]

    def ensure_fences(self, epoch: int, now: float) -> int:
        if self.boot != self.run_id:
            self.fence, self.grant, self.boot = None, {}, self.run_id
        return self.set_fence(epoch, now, force=False)

    def grant_bound(self) -> float:
        return rules.grant_bound(self.grant.get("sent_at"), (self.fence or {}).get("loaded_at"))

    def counters(self, name: str) -> dict:
        return self.servers.setdefault(
            name, {"slot": -1, "misses": 0, "first_miss": None, "answers": 0, "last_answer_at": 0.0}
        )

    def count(self, name: str, slot: int, at: float, answered: bool):  # _COUNT_FUNCTION
        c = self.counters(name)
        if slot <= c["slot"]:
            return None
        c["slot"] = slot
        if answered:
            c.update(misses=0, first_miss=None, last_answer_at=at)
            c["answers"] += 1
        else:
            c["answers"] = 0
            c["misses"] += 1
            if c["misses"] == 1:
                c["first_miss"] = at
        return dict(c)

    def bump(self, name: str, field_name: str, bad: bool) -> int:
        c = self.counters(name)
        good, wrong = (
            (f"{field_name}_bad", f"{field_name}_good") if bad else (f"{field_name}_good", f"{field_name}_bad")
        )
        c[good] = c.get(good, 0) + 1
        c[wrong] = 0
        return c[good]


class Appliance:
    """One appliance: its clocks, its persisted state, its serving log and, while it runs, its
    `AgentCore` and peer heartbeater."""

    def __init__(self, world: World, name: str, mono_offset: float, wall_offset: float, rate: float = 1.0):
        self.world = world
        self.name = name
        self.mono_offset = mono_offset
        self.rate = rate  # of the monotonic clock against true time (1: the model's assumption)
        self.wall_offset = wall_offset
        self.disk: dict | None = None
        self.serving_log: list[dict] = []
        self.core: AgentCore | None = None
        self.paused = False
        self.peer_next = 0.0
        self.peer_pending: tuple | None = None  # (request id, peer URL, deadline)
        self.held = (0, 0)  # the highest (epoch, seq) ever held
        self.read = 0  # serving-log records already read by World.check
        self.interval: list[float] | None = None  # the latest serving interval, in true time
        self.start()

    def mono(self) -> float:
        return self.rate * self.world.now + self.mono_offset

    def true_time(self, mono: float) -> float:
        return (mono - self.mono_offset) / self.rate

    def wall(self) -> float:
        return self.world.now + self.wall_offset

    def _persist(self, state: dict) -> None:
        self.disk = copy.deepcopy(state)

    def start(self) -> None:
        self.core = AgentCore(
            mono=self.mono,
            wall=self.wall,
            state=copy.deepcopy(self.disk),
            persist=self._persist,
            serving_log=self.serving_log.append,
            name=self.name,
            logger=QUIET,
        )
        self.paused = False
        self.peer_next = self.world.now
        self.peer_pending = None

    @property
    def alive(self) -> bool:
        return self.core is not None

    def serving(self) -> bool:
        return self.core is not None and self.core.holds_lease(self.mono())

    def handle(self, message: Message) -> tuple[int, dict]:
        core = self.core
        assert core is not None
        receipt, wall = self.mono(), self.wall()
        if message.kind == "heartbeat":
            try:
                answer = core.heartbeat(message.body, receipt, wall)
            except BadRequest as error:
                return 400, {"error": str(error)}
            return 200, {**answer, "services": [], "peer": core.peer_fields(self.mono())}
        try:
            return 200, core.apply_role(message.body, receipt, wall)
        except Refused as refused:
            return 409, refused.answer
        except BadRequest as error:
            return 400, {"error": str(error)}


class World:
    """The cluster, its network and its control plane, advanced by the rules of the state machine."""

    def __init__(self, offsets: dict[str, float] | None = None, rates: dict[str, float] | None = None):
        offsets, rates = offsets or {}, rates or {}
        self.now = 1000.0
        self.ids = itertools.count(1)
        self.row = Row()
        self.redis = Redis(run_id=1)
        self.redis_snapshot: Redis | None = None
        self.cp_offset = offsets.get("cp", 0.0)
        self.offset_moved = {name: self.now for name in ("A", "B", "cp")}
        self.agents = {
            name: Appliance(self, name, offsets.get(f"{name}_mono", 0.0), offsets.get(name, 0.0), rates.get(name, 1.0))
            for name in ("A", "B")
        }
        self.network: list[Message] = []
        self.delivered: set[int] = set()  # requests of which a copy reached a live agent
        self.cp_inbox: dict[int, Outcome] = {}
        self.requests: dict[int, tuple[float, float]] = {}  # request id -> (sent true, sent wall)
        self.procs: list[Process] = []
        self.dispatched = (0.0, 0)  # the last slot dispatched: (interval, slot)
        self.tokens = itertools.count(1)
        self.claims: dict[int, tuple[int, int]] = {}  # token -> (epoch, epoch_floor) at its claim
        self.primaries: dict[int, str] = {}  # epoch -> the agent that held primary at it
        self.max_epoch = self.row.epoch
        self.closest = math.inf  # the smallest gap between one agent's serving and the other's
        self.log: list[str] = []
        self._configure()

    # -- clocks ----------------------------------------------------------------------------------
    def cp_wall(self) -> float:
        return self.now + self.cp_offset

    def advance(self, dt: float) -> None:
        self.now += dt

    def drift(self, who: str, fraction: float) -> None:
        """Move a wall clock's offset by `fraction` of what slewing allows since it last moved,
        within ±max_clock_skew/2."""
        allowed = SLEW * (self.now - self.offset_moved[who])
        bound = self.row.max_clock_skew / 2
        old = self.cp_offset if who == "cp" else self.agents[who].wall_offset
        new = min(bound, max(-bound, old + fraction * allowed))
        if who == "cp":
            self.cp_offset = new
        else:
            self.agents[who].wall_offset = new
        self.offset_moved[who] = self.now

    # -- set-up ----------------------------------------------------------------------------------
    def _configure(self) -> None:
        """configure_cluster, delivered at once: A primary and B secondary at epoch 1."""
        for name, role in (("A", "primary"), ("B", "secondary")):
            self.row.command_seq += 1
            self.agents[name].core.apply_role(self._role_body(role, 1, self.row.command_seq, peer=self._other(name)))
        self.redis.ensure_fences(self.row.grant_fence_epoch, self.cp_wall())
        self.dispatched = (self.row.interval, math.floor(self.cp_wall() / self.row.interval))

    def _other(self, name: str) -> str:
        return "B" if name == "A" else "A"

    def _role_body(self, role: str, epoch: int, seq: int, *, peer: str, row: Row | None = None, **extra) -> dict:
        row = row or self.row
        return {
            "role": role,
            "epoch": epoch,
            "seq": seq,
            "interval_s": row.interval,
            "lease_s": row.lease_s,
            "max_grant_delay": row.max_grant_delay,
            "max_clock_skew": row.max_clock_skew,
            "peer_url": f"https://{peer}.model",
            "peer_token": "t",
            **extra,
        }

    # -- the network -----------------------------------------------------------------------------
    def send(self, src: str, dst: str, kind: str, body: dict, request: int | None = None) -> int:
        message_id = next(self.ids)
        self.network.append(Message(message_id, request or message_id, kind, src, dst, body, self.now))
        return message_id

    def deliver(self, index: int) -> None:
        message = self.network.pop(index)
        if message.kind == "answer":
            self._answer_arrives(message)
            return
        agent = self.agents[message.dst]
        if agent.paused:
            self.network.insert(index, message)  # a stopped process reads nothing
            return
        if not agent.alive:
            if message.request not in self.delivered:
                self.refuse_request(message.request, message.src)
            return
        self.delivered.add(message.request)
        status, body = agent.handle(message)
        self.send(message.dst, message.src, "answer", {"status": status, "body": body, "to": message.request})
        self.check()

    def refuse(self, index: int) -> None:
        """A connection refused: only for a request none of whose copies reached an agent."""
        message = self.network[index]
        if message.kind == "answer" or message.request in self.delivered:
            return
        self.refuse_request(message.request, message.src)

    def refuse_request(self, request: int, src: str) -> None:
        self.network = [m for m in self.network if m.request != request or m.kind == "answer"]
        if src == "cp":
            self.cp_inbox.setdefault(request, Outcome(refused=True))
        else:
            agent = self.agents[src]
            if agent.peer_pending and agent.peer_pending[0] == request:
                agent.peer_pending = (*agent.peer_pending[:3], REFUSED)

    def drop(self, index: int) -> None:
        self.network.pop(index)

    def duplicate(self, index: int) -> None:
        message = self.network[index]
        self.network.append(Message(next(self.ids), message.request, message.kind, message.src, message.dst,
                                    copy.deepcopy(message.body), message.sent))  # fmt: skip

    def _answer_arrives(self, message: Message) -> None:
        to, status, body = message.body["to"], message.body["status"], message.body["body"]
        if message.dst == "cp":
            if to in self.cp_inbox or to not in self.requests:
                return
            sent_true, sent_wall = self.requests[to]
            self.cp_inbox[to] = Outcome(status, body, False, sent_wall, self.cp_wall(), self.now - sent_true)
            return
        agent = self.agents[message.dst]
        if agent.alive and not agent.paused and agent.peer_pending and agent.peer_pending[0] == to:
            agent.peer_pending = (*agent.peer_pending[:3], "answered")
        elif agent.paused:
            self.network.append(message)

    # -- agents ----------------------------------------------------------------------------------
    def crash(self, name: str) -> None:
        agent = self.agents[name]
        agent.core = None
        agent.paused = False
        agent.peer_pending = None

    def wipe(self, name: str) -> None:
        """The appliance's state directory is wiped while it is down: it restarts unconfigured, a new
        appliance as far as (epoch, seq) go."""
        agent = self.agents[name]
        if agent.core is None:
            agent.disk = None
            agent.held = (0, 0)

    def restart(self, name: str) -> None:
        agent = self.agents[name]
        if agent.core is None:
            agent.start()
            self.check()

    def pause(self, name: str, paused: bool) -> None:
        agent = self.agents[name]
        if agent.alive:
            agent.paused = paused

    def peer_slot(self, name: str) -> None:
        """One turn of the secondary's heartbeater (agent/peer.py): conclude the last send, then
        send the next slot's grant."""
        agent = self.agents[name]
        core = agent.core
        if core is None or agent.paused:
            return
        if agent.peer_pending is not None:
            request, _, deadline, *result = agent.peer_pending
            if result and result[0] == "answered":
                core.grant_answered()
            elif result and result[0] == REFUSED:
                core.grant_failed(refused=True)
            elif self.now >= deadline:
                core.grant_failed(refused=False)
            else:
                return
            agent.peer_pending = None
        if self.now < agent.peer_next:
            return
        peer_url = core.begin_grant()
        if peer_url is None:
            agent.peer_next = self.now + IDLE_POLL_S
            return
        interval = core.settings.interval_s
        # Decided, stamped and recorded as it leaves (agent/peer.py makes the body on the open
        # connection; the model has no connect time, so it leaves now). A refused one is recorded
        # too here: a longer wait, the safe side.
        body = core.grant_leaving(peer_url)
        request = self.send(name, self._other(name), "heartbeat", body)
        agent.peer_pending = (request, peer_url, self.now + interval * 0.8)
        agent.peer_next = max(agent.peer_next + interval, self.now)

    # -- control-plane processes -----------------------------------------------------------------
    def spawn(self, name: str, gen, kind: str = "") -> None:
        self.procs.append(Process(name, gen, kind=kind))

    def runnable(self) -> list[int]:
        return [i for i, proc in enumerate(self.procs) if self._ready(proc)]

    def _ready(self, proc: Process) -> bool:
        wait = proc.wait
        if wait is None:
            return True
        if isinstance(wait, Sleep):
            return self.now >= wait.until
        return all(request in self.cp_inbox or self.now >= deadline for request, deadline in wait)

    def step(self, index: int) -> None:
        """Run one process from where it waits to its next wait (one I/O of the real one)."""
        proc = self.procs[index]
        if not self._ready(proc):
            return
        value = None
        if isinstance(proc.wait, list):
            value = [self.cp_inbox.pop(request, Outcome()) for request, _ in proc.wait]
            for request, _ in proc.wait:
                self.requests.pop(request, None)
            if len(value) == 1:
                value = value[0]
        try:
            effect = proc.gen.send(value)
        except StopIteration:
            self.procs.pop(index)
            return
        if effect is None:
            proc.wait = None
        elif isinstance(effect, Sleep):
            proc.wait = effect
        else:
            calls = effect if isinstance(effect, list) else [effect]
            waits = []
            for call in calls:
                request = self.send("cp", call.dst, call.kind, call.body)
                self.requests[request] = (self.now, self.cp_wall())
                waits.append((request, self.now + call.timeout))
            proc.wait = waits
        self.check()

    def crash_process(self, index: int) -> None:
        proc = self.procs.pop(index)
        proc.gen.close()
        if isinstance(proc.wait, list):
            for request, _ in proc.wait:
                self.requests.pop(request, None)

    # -- Redis -------------------------------------------------------------------------------------
    def restart_redis(self, snapshot: bool) -> None:
        """Redis restarts under a new run id, empty or from the last snapshot taken."""
        run_id = self.redis.run_id + 1
        base = self.redis_snapshot if snapshot else None
        self.redis = copy.deepcopy(base) if base is not None else Redis(run_id=run_id)
        self.redis.run_id = run_id

    def snapshot_redis(self) -> None:
        self.redis_snapshot = copy.deepcopy(self.redis)

    # -- invariants ------------------------------------------------------------------------------
    def check(self) -> None:
        serving = [name for name, agent in self.agents.items() if agent.serving()]
        if len(serving) > 1:
            raise Violation(f"two agents serve at {self.now:.6f}: {serving}")
        self._read_serving_logs()
        if self.row.epoch < self.max_epoch:
            raise Violation(f"the database epoch went back from {self.max_epoch} to {self.row.epoch}")
        self.max_epoch = self.row.epoch
        for name, agent in self.agents.items():
            core = agent.core
            if core is None:
                continue
            held = (core.epoch, core.seq)
            if held < agent.held:
                raise Violation(f"{name} went back from (epoch, seq) {agent.held} to {held}")
            agent.held = held
            if core.role == "primary":
                other = self.primaries.setdefault(core.epoch, name)
                if other != name:
                    raise Violation(f"{name} is primary at epoch {core.epoch}, which {other} held as primary")

    def check_promotion(self, epoch: int, start_epoch: int, start_floor: int) -> None:
        """A commit: +1 over the epoch (or floor) its claim started from, at an epoch no other agent
        held as primary."""
        if epoch != max(start_epoch, start_floor) + 1:
            raise Violation(f"promotion to {epoch} from epoch {start_epoch} (floor {start_floor})")
        holder = self.primaries.get(epoch)
        if holder is not None and holder != self.row.primary:
            raise Violation(f"promotion of {self.row.primary} to epoch {epoch}, held as primary by {holder}")

    def _read_serving_logs(self) -> None:
        """Follow both serving logs in true time and keep the closest hand-over: how long after the
        other agent's latest lease ended an agent started serving (negative: an overlap). Hypothesis
        is steered towards small gaps (`target` in the machine's teardown)."""
        for name, agent in self.agents.items():
            other = self.agents[self._other(name)]
            for record in agent.serving_log[agent.read :]:
                if "stop" in record:
                    if agent.interval is not None:
                        agent.interval[1] = min(agent.interval[1], agent.true_time(record["stop"]))
                    continue
                start, end = agent.true_time(record["start"]), agent.true_time(record["end"])
                if agent.interval is not None and start <= agent.interval[1]:
                    agent.interval[1] = max(agent.interval[1], end)
                else:
                    agent.interval = [start, end]
                    if other.interval is not None and other.interval[0] <= start:
                        self.closest = min(self.closest, start - other.interval[1])
            agent.read = len(agent.serving_log)
