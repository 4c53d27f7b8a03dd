"""Shrunk schedules of the protocol model, replayed as plain tests.

Each one is the minimal counterexample Hypothesis found for a rule of cluster/failover_rules.py
broken on purpose (the mutation named in the test): the schedule must break an invariant with the
rule broken, and keep every invariant with the rule as production runs it. They pin the model's
power to find these faults, and the real rules' answer to the interleavings that expose them.
"""

import pytest

from cluster import failover_rules as rules

from .machine import ProtocolModel
from .world import Violation

A_CUT_FROM_THE_CONTROL_PLANE = frozenset({("A", "cp"), ("cp", "A")})


def no_lease_wait(cp_bound, secondary_last_grant, lease, delay, skew):
    return max(cp_bound, secondary_last_grant)


def no_secondary_grant_in_the_wait(cp_bound, secondary_last_grant, lease, delay, skew):
    return cp_bound + lease + delay + skew


def the_current_lease_only(effective_lease_s, lease_bound_s):
    return effective_lease_s


def switchover_while_the_control_plane_loses_the_primary():
    """A switchover requested while the control plane's link to the primary A goes down: the old
    primary's demotion does not arrive, so the promotion waits out A's lease, which the secondary's
    peer grants keep extending until its candidacy."""
    state = ProtocolModel()
    state.start(a=-0.05, b=-0.05, control=-0.05, mono=0.0)
    state.safe()
    state.switchover()
    state.safe()
    state.run_fast(cut=A_CUT_FROM_THE_CONTROL_PLANE, duration=2.0)
    state.teardown()


def switchovers_with_a_slow_then_cut_primary_link():
    """Three switchovers; the last one's demotion of A is slow (0.25 s), then cut: A's lease comes
    from the secondary's grants, which only the candidacy answer tells the control plane about."""
    state = ProtocolModel()
    state.start(a=-0.05, b=-0.05, control=-0.05, mono=0.0)
    state.safe()
    state.slot()
    state.safe()
    state.run(cut=frozenset(), delay=0.001, duration=2.756554011040739, slow=frozenset(), slow_delay=0.001, workers=1)
    state.safe()
    state.switchover()
    state.safe()
    state.run(cut=frozenset(), delay=0.001, duration=9.880940212132298, slow=frozenset(), slow_delay=0.001, workers=1)
    state.safe()
    state.switchover()
    state.safe()
    state.run(cut=frozenset(), delay=0.001, duration=4.0, slow=A_CUT_FROM_THE_CONTROL_PLANE, slow_delay=0.25,
              workers=1)  # fmt: skip
    state.safe()
    state.switchover()
    state.safe()
    state.run(cut=A_CUT_FROM_THE_CONTROL_PLANE, delay=0.001, duration=4.0, slow=frozenset(), slow_delay=0.001,
              workers=1)  # fmt: skip
    state.teardown()


def switchover_right_after_shortening_the_lease():
    """Interval 2 s → 1 s and lease 4 s → 1.5 s, then a switchover at once: the secondary still grants
    the old 4 s lease until the settings reach it, so the wait must use the longest lease."""
    state = ProtocolModel()
    state.start(a=-0.05, b=-0.05, control=-0.05, mono=0.0)
    state.safe()
    state.run_fast(cut=frozenset(), duration=1.0)
    state.safe()
    state.advance(dt=0.0)
    state.safe()
    state.deliver(i=0)
    state.safe()
    state.advance(dt=0.0)
    state.safe()
    state.run_fast(cut=A_CUT_FROM_THE_CONTROL_PLANE, duration=2.5)
    state.safe()
    state.advance(dt=0.0)
    state.safe()
    state.peer_slot(name="A")
    state.safe()
    state.step_process(i=0)
    state.safe()
    state.drift(fraction=0.0, who="A")
    state.safe()
    state.change_settings(factor=1.5, interval=1.0)
    state.safe()
    state.switchover()
    state.safe()
    state.start_worker()
    state.safe()
    state.switchover()
    state.safe()
    state.run_fast(cut=A_CUT_FROM_THE_CONTROL_PLANE, duration=2.0)
    state.teardown()


CASES = [
    pytest.param(switchover_while_the_control_plane_loses_the_primary, "lease_deadline", no_lease_wait,
                 id="no-lease-wait"),
    pytest.param(switchovers_with_a_slow_then_cut_primary_link, "lease_deadline", no_secondary_grant_in_the_wait,
                 id="wait-ignores-the-secondarys-grants"),
    pytest.param(switchover_right_after_shortening_the_lease, "longest_lease_s", the_current_lease_only,
                 id="wait-ignores-the-old-lease"),
]  # fmt: skip


@pytest.mark.parametrize("schedule, rule, mutation", CASES)
def test_the_schedule_keeps_every_invariant_with_the_real_rules(schedule, rule, mutation):
    schedule()


@pytest.mark.parametrize("schedule, rule, mutation", CASES)
def test_the_schedule_breaks_an_invariant_with_the_rule_broken(schedule, rule, mutation, monkeypatch):
    monkeypatch.setattr(rules, rule, mutation)
    with pytest.raises(Violation, match="two agents serve"):
        schedule()
