"""The failover's pure decisions, with no agent, Redis or Celery: whose clock is blamed, which
step a takeover resumes, when the database's primary disagrees with its agent."""

import pytest

from cluster import failover_rules as rules
from cluster.choices import FailoverStep
from cluster.failover import STEPS, claim_seconds, disagreement, later_step
from cluster.heartbeat import skew_blame

LIMIT = 0.05  # max_clock_skew 0.1 s / 2


def reading(offset: float, uncertainty: float = 0.001) -> tuple[bool, float, float, float]:
    """What heartbeat.skew_reading makes of one answer: (off from the control plane, offset, …)."""
    return abs(offset) - uncertainty > LIMIT, offset, uncertainty, LIMIT


def test_a_primary_off_from_both_others_is_blamed():
    assert skew_blame(reading(0.3), reading(0.0)) == (True, False, False)


def test_a_secondary_off_from_both_others_is_blamed():
    assert skew_blame(reading(0.0), reading(-0.3)) == (False, True, False)


def test_a_control_plane_off_from_two_agreeing_appliances_is_blamed_and_no_appliance_is():
    # The heartbeat worker's clock 0.2 s ahead: both agents read 0.2 s behind it.
    assert skew_blame(reading(-0.2), reading(-0.21)) == (False, False, True)


def test_nobody_is_blamed_with_one_appliance_only():
    assert skew_blame(reading(0.3), None) == (False, False, False)
    assert skew_blame(None, reading(0.3)) == (False, False, False)


def test_clocks_within_the_limit_blame_nobody():
    assert skew_blame(reading(0.02), reading(-0.02)) == (False, False, False)


def test_three_clocks_all_apart_blame_nobody_for_sure():
    assert skew_blame(reading(0.3), reading(-0.3)) == (False, False, False)


def test_a_takeover_never_moves_the_step_backwards():
    assert later_step(FailoverStep.PROMOTE, FailoverStep.WITNESS) == FailoverStep.PROMOTE
    assert later_step(FailoverStep.WITNESS, FailoverStep.CANDIDACY) == FailoverStep.CANDIDACY
    assert later_step("", FailoverStep.WITNESS) == FailoverStep.WITNESS
    assert STEPS.index(FailoverStep.PROMOTE) > STEPS.index(FailoverStep.WAIT)


def test_a_claim_outlasts_one_role_command_attempt_and_its_backoff():
    attempt_timeout, longest_backoff = 2.0, 1.0  # cluster.role_commands.send_role
    assert claim_seconds() > attempt_timeout + longest_backoff


@pytest.mark.parametrize(
    "answer, epoch, disagrees",
    [
        ({"role": "primary", "epoch": 3}, 3, False),
        ({"role": "secondary", "epoch": 4}, 3, True),  # demoted by an interrupted switchover
        ({"role": "unconfigured", "epoch": 0}, 3, True),  # its state directory was wiped
        ({"role": "primary", "epoch": 2}, 3, True),
        ({}, 3, False),  # no answer: missed heartbeats are another cause
    ],
)
def test_the_database_primary_disagrees_with_its_agent(answer, epoch, disagrees):
    assert bool(disagreement(answer, epoch)) is disagrees


def test_the_pure_rules_know_the_steps_in_the_databases_order():
    assert list(rules.STEPS) == [step for step, _ in FailoverStep.choices if step]
