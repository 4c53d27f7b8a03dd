"""The Hypothesis state machine over `World`: every rule is a fault, an operator's action or a step
of one process; the invariants are checked after every step (and inside every rule, after every
message and process step). See world.py for the assumptions."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis import target
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from . import control_plane as cp
from .world import World

NAMES = st.sampled_from(["A", "B"])
INDEX = st.integers(min_value=0, max_value=63)
LINKS = st.sampled_from(
    [
        frozenset(),
        frozenset({("cp", "A"), ("A", "cp")}),  # the control plane loses the primary
        frozenset({("cp", "A")}),  # one way
        frozenset({("A", "cp")}),
        frozenset({("A", "B"), ("B", "A")}),  # the peer link
        frozenset({("cp", "B"), ("B", "cp")}),
        frozenset({("cp", "A"), ("A", "cp"), ("A", "B"), ("B", "A")}),  # A isolated
        frozenset({("cp", "B"), ("B", "cp"), ("A", "B"), ("B", "A")}),  # B isolated
    ]
)
# Delays around max_grant_delay (0.25 s) matter most: a grant just under it is accepted.
DELAYS = st.one_of(st.sampled_from([0.001, 0.01, 0.2, 0.25, 0.26, 0.35, 1.5]), st.floats(min_value=0, max_value=0.4))
# Offsets at the bounds (±max_clock_skew/2) matter most.
OFFSET = st.one_of(st.sampled_from([-0.05, 0.0, 0.05]), st.floats(min_value=-0.05, max_value=0.05))


class ModelCounter:
    schedules = 0
    steps = 0


class ProtocolModel(RuleBasedStateMachine):
    @initialize(a=OFFSET, b=OFFSET, control=OFFSET, mono=st.floats(min_value=-50, max_value=50))
    def start(self, a, b, control, mono):
        ModelCounter.schedules += 1
        self.world = World({"A": a, "B": b, "cp": control, "A_mono": mono, "B_mono": -mono})
        cp.run(self.world, 5.0)  # the cluster settles: A serves on grants

    # -- time and normal operation --------------------------------------------------------------
    @rule(duration=st.floats(min_value=0.01, max_value=12.0), delay=DELAYS, cut=LINKS, slow=LINKS,
          slow_delay=DELAYS, workers=st.sampled_from([1, 1, 2]))  # fmt: skip
    def run(self, duration, delay, cut, slow, slow_delay, workers):
        cp.run(self.world, duration, delay=delay, cut=cut, slow=slow, slow_delay=slow_delay, workers=workers)

    @rule(duration=st.floats(min_value=0.01, max_value=6.0), cut=LINKS)
    def run_fast(self, duration, cut):
        cp.run(self.world, duration, cut=cut)

    @rule(dt=st.floats(min_value=0.0, max_value=3.0))
    def advance(self, dt):
        self.world.advance(dt)

    # -- the network ----------------------------------------------------------------------------
    @precondition(lambda self: self.world.network)
    @rule(i=INDEX)
    def deliver(self, i):
        self.world.deliver(i % len(self.world.network))

    @precondition(lambda self: self.world.network)
    @rule(i=INDEX)
    def drop(self, i):
        self.world.drop(i % len(self.world.network))

    @precondition(lambda self: self.world.network)
    @rule(i=INDEX)
    def duplicate(self, i):
        self.world.duplicate(i % len(self.world.network))

    @precondition(lambda self: self.world.network)
    @rule(i=INDEX)
    def refuse(self, i):
        self.world.refuse(i % len(self.world.network))

    # -- agents ---------------------------------------------------------------------------------
    @rule(name=NAMES)
    def crash(self, name):
        self.world.crash(name)

    @rule(name=NAMES)
    def wipe(self, name):
        self.world.wipe(name)

    @rule(name=NAMES)
    def restart(self, name):
        self.world.restart(name)

    @rule(name=NAMES, paused=st.booleans())
    def pause(self, name, paused):
        self.world.pause(name, paused)

    @rule(name=NAMES)
    def peer_slot(self, name):
        self.world.peer_slot(name)

    @rule(who=st.sampled_from(["A", "B", "cp"]), fraction=st.floats(min_value=-1, max_value=1))
    def drift(self, who, fraction):
        self.world.drift(who, fraction)

    # -- the control plane ----------------------------------------------------------------------
    @rule()
    def slot(self):
        cp.dispatch(self.world)

    @precondition(lambda self: self.world.procs)
    @rule(i=INDEX)
    def step_process(self, i):
        self.world.step(i % len(self.world.procs))

    @precondition(lambda self: cp.wants_worker(self.world))
    @rule()
    def start_worker(self):
        cp.start_worker(self.world)

    @precondition(lambda self: any(p.kind == "worker" for p in self.world.procs))
    @rule(i=INDEX)
    def crash_worker(self, i):
        workers = [n for n, p in enumerate(self.world.procs) if p.kind == "worker"]
        self.world.crash_process(workers[i % len(workers)])

    @rule(snapshot=st.booleans())
    def restart_redis(self, snapshot):
        self.world.restart_redis(snapshot)

    @rule()
    def snapshot_redis(self):
        self.world.snapshot_redis()

    @rule(interval=st.sampled_from([1.0, 2.0, 3.0]), factor=st.sampled_from([1.5, 2.0, 3.0]))
    def change_settings(self, interval, factor):
        cp.change_settings(self.world, interval, interval * factor)

    @rule()
    def switchover(self):
        cp.request_switchover(self.world)

    @rule(on=st.booleans())
    def maintenance(self, on):
        self.world.row.maintenance = on

    def teardown(self):
        if hasattr(self, "world") and currently_in_test_context():  # not in a plain replay
            target(-min(self.world.closest, 30.0), label="closest hand-over (s, negated)")

    @invariant()
    def safe(self):
        ModelCounter.steps += 1
        if hasattr(self, "world"):
            self.world.check()
