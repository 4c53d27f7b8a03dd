"""The failover's pure decisions, with no agent, Redis or Celery: whose clock is blamed, which
step a takeover resumes, when the database's primary disagrees with its agent."""

import pytest

from cluster import failover, failover_claim, failover_steps, switchover
from cluster import failover_rules as rules
from cluster.choices import FailoverStep
from cluster.failover_claim import claim_seconds
from cluster.failover_rules import STEPS, disagreement, later_step, skew_blame
from tests.model import control_plane

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


# -- one test per rule of docs/protocol.md that the control plane decides (rules 2 to 12) ----------
# The pipeline (cluster/failover.py, failover_steps.py, failover_claim.py) and the heartbeat
# evaluation call exactly these functions; the protocol model (tests/model/) checks them over
# generated schedules. Here each rule's decision is pinned down on plain values.


def test_rule_2_the_grant_bound_is_the_last_recorded_grant_or_the_fence_load_if_later():
    assert rules.grant_bound(100.0, 90.0) == 100.0
    # Redis restarted at 120: grants sent before then are unknown, so the bound is the reload.
    assert rules.grant_bound(100.0, 120.0) == 120.0
    assert rules.grant_bound(None, None) == 0.0


def test_rule_3_nothing_is_granted_below_the_fence_or_to_a_skewed_primary():
    assert rules.may_grant(epoch=3, grant_fence_epoch=3, primary_skewed=False)
    assert not rules.may_grant(epoch=3, grant_fence_epoch=4, primary_skewed=False)  # a failover claimed it
    assert not rules.may_grant(epoch=3, grant_fence_epoch=3, primary_skewed=True)


def test_rule_4_a_clock_reading_counts_its_uncertainty():
    # 60 ms off, but the round trip leaves 20 ms of doubt each way: within a 50 ms limit.
    off, offset, uncertainty, limit = rules.skew_reading(10.06, 9.98, 10.02, 0.04, 0.1)
    assert (round(offset, 3), uncertainty, limit) == (0.06, 0.02, 0.05) and not off
    assert rules.skew_reading(10.2, 9.98, 10.02, 0.04, 0.1)[0]
    assert rules.skew_reading(None, 9.98, 10.02, 0.04, 0.1) is None  # no clock in the answer


@pytest.mark.parametrize(
    "maintenance, active, syncing, allowed",
    [(False, True, False, True), (True, True, False, False), (False, False, False, False), (False, True, True, False)],
)
def test_rule_5_only_an_active_synced_cluster_out_of_maintenance_asks_for_a_failover(
    maintenance, active, syncing, allowed
):
    assert rules.may_request(maintenance, active, syncing) is allowed


def test_rule_5_a_recent_failover_damps_the_causes_that_follow_the_role_but_never_missed_heartbeats():
    assert rules.damped("critical_service", since_last_failover_s=15.0, interval=2.0)
    assert not rules.damped("critical_service", since_last_failover_s=25.0, interval=2.0)
    assert not rules.damped("missed_heartbeats", since_last_failover_s=1.0, interval=2.0)
    assert not rules.damped("clock_skew", since_last_failover_s=None, interval=2.0)  # never failed over


def test_rule_5_a_request_that_names_another_epoch_or_primary_is_stale():
    request = {"seen_epoch": 3, "server_id": 7}
    assert rules.request_current(request, 3, 7)
    assert not rules.request_current(request, 4, 7)
    assert not rules.request_current(request, 3, 8)


def test_rule_6_the_claim_goes_above_every_epoch_seen_and_the_step_never_goes_back():
    assert rules.pending_epoch(3, 0) == 4
    assert rules.pending_epoch(3, 7) == 8  # an agent was seen at epoch 7: never reused
    assert rules.committed_to_promote(FailoverStep.PROMOTE)
    assert rules.committed_to_promote(FailoverStep.COMMIT)
    assert not rules.committed_to_promote(FailoverStep.WAIT)
    assert not rules.committed_to_promote("")


@pytest.mark.parametrize(
    "answered, failing, skewed, refused",
    [
        (True, [], False, ""),
        (False, [], False, "does not answer"),
        (True, ["dmm"], False, "critical services fail"),
        (True, [], True, "clock of the secondary"),
    ],
)
def test_rule_7_the_secondary_takes_over_only_answering_healthy_and_in_step(answered, failing, skewed, refused):
    refusal = rules.witness_refusal("b", answered, "timed out", failing, skewed)
    assert (refused in refusal) if refused else refusal == ""


def test_rule_7_the_second_witness_stops_a_failover_while_the_secondary_still_hears_the_primary():
    # Threshold 3 at 1 s: the secondary's last answer must be at least 2 s old.
    assert rules.secondary_still_hears("missed_heartbeats", FailoverStep.WITNESS, 0.5, 3, 1.0) == 2.0
    assert rules.secondary_still_hears("missed_heartbeats", FailoverStep.WITNESS, 2.5, 3, 1.0) is None
    assert rules.secondary_still_hears("missed_heartbeats", FailoverStep.WITNESS, None, 3, 1.0) is None
    assert rules.secondary_still_hears("critical_service", FailoverStep.WITNESS, 0.5, 3, 1.0) is None
    assert rules.secondary_still_hears("missed_heartbeats", FailoverStep.PROMOTE, 0.5, 3, 1.0) is None


def test_rule_8_a_candidacy_outlasts_the_lease_wait_and_the_wait_starts_from_its_answer():
    assert rules.candidacy_deadline_s(4.0, 0.25, 0.1, 5.0) == pytest.approx(24.35)
    assert rules.secondary_last_grant(100.0, 1.5) == 98.5
    assert rules.secondary_last_grant(100.0, None) == 0.0  # it never granted


def test_rule_9_the_wait_ends_a_lease_after_the_last_grant_of_either_granter():
    assert rules.lease_deadline(100.0, 101.0, 4.0, 0.25, 0.1) == pytest.approx(105.35)
    assert rules.longest_lease_s(4.0, None) == 4.0
    assert rules.longest_lease_s(4.0, 8.0) == 8.0  # a settings change not acknowledged yet


@pytest.mark.parametrize(
    "fence, still_mine, over",
    [(4, True, "done"), (5, True, "done"), (None, True, "again"), (3, True, "lost"), (4, False, "lost")],
)
def test_rule_9_after_the_wait_the_fence_must_still_stand_and_the_claim_be_ours(fence, still_mine, over):
    assert rules.wait_over(fence, 4, still_mine) == over


def test_rule_10_a_takeover_past_promote_finds_the_secondary_already_primary():
    assert rules.already_promoted({"role": "primary", "epoch": 4}, 4)
    assert not rules.already_promoted({"role": "candidate", "epoch": 3}, 4)
    assert not rules.already_promoted({}, 4)


@pytest.mark.parametrize(
    "cause, facts, why",
    [
        ("missed_heartbeats", {"maintenance": True}, "maintenance"),
        ("missed_heartbeats", {"maintenance": False, "primary_back": True}, "answers heartbeats again"),
        ("clock_skew", {"maintenance": False, "primary_skewed": False}, "clock is back in step"),
        ("critical_service", {"maintenance": False, "primary_answer": {"services": []}}, "pass again"),
        (
            "agents_disagree",
            {"maintenance": False, "epoch": 3, "primary_answer": {"role": "primary", "epoch": 3}},
            "holds its role",
        ),
        ("not_serving", {"maintenance": False, "primary_answer": {"lease_remaining_s": 2.0}}, "holds a lease again"),
        ("critical_service", {"maintenance": False, "primary_answer": None}, ""),  # silent: it stands
        ("switchover", {"maintenance": True}, ""),  # an operator's request is not automatic
    ],
)
def test_rule_11_an_automatic_failover_is_abandoned_before_promote_when_its_cause_is_gone(cause, facts, why):
    gone = rules.cause_gone(cause, FailoverStep.CANDIDACY, **facts)
    assert (why in gone) if why else gone == ""
    assert rules.cause_gone(cause, FailoverStep.PROMOTE, **facts) == ""  # never past the promotion


def test_rule_11_a_failed_failover_retries_with_a_growing_capped_backoff():
    assert [rules.release_backoff_s(n) for n in (0, 1, 2)] == [2.0, 4.0, 6.0]
    assert rules.release_backoff_s(100) == 60.0


def test_rule_12_a_refusal_adopts_the_newer_seq_and_epoch_the_agent_holds():
    assert rules.adopted(7, 40, 5, 30) == {"command_seq": 40, "epoch_floor": 7}
    assert rules.adopted(3, 20, 5, 30) == {"command_seq": 30, "epoch_floor": 5}
    assert rules.adopted(None, True, 5, 30) == {}  # not integers: nothing adopted


def test_rule_12_an_agent_that_already_holds_the_command_needs_no_resend():
    candidacy = {"id": "c1"}
    assert rules.held_by({"role": "candidate", "epoch": 3, "candidacy": {"id": "c1"}}, "candidate", 3, candidacy)
    assert not rules.held_by({"role": "candidate", "epoch": 3, "candidacy": {"id": "c0"}}, "candidate", 3, candidacy)
    assert rules.held_by({"role": "secondary", "epoch": 4}, "secondary", 4, None)
    assert not rules.held_by({"role": "secondary", "epoch": 3}, "secondary", 4, None)


def test_invariant_3_misses_must_span_the_threshold_and_answers_bring_a_server_back():
    # Three misses at 1 s intervals span 2 s: enough; three crowded into 1 s are not.
    assert rules.missed_enough(3, 10.0, 12.0, 3, 1.0)
    assert not rules.missed_enough(3, 11.0, 12.0, 3, 1.0)
    assert not rules.missed_enough(2, 10.0, 12.0, 3, 1.0)
    assert rules.recovered(2, 2) and not rules.recovered(1, 2)


def test_a_primary_dark_for_the_threshold_is_not_serving_unless_a_service_explains_it():
    assert rules.not_serving(True, 3, 3, critical_failing=False)
    assert not rules.not_serving(True, 3, 3, critical_failing=True)  # critical_service is its cause
    assert not rules.not_serving(True, 2, 3, critical_failing=False)
    assert rules.holds_no_lease({"role": "primary", "epoch": 3, "lease_remaining_s": 0}, 3)
    assert not rules.holds_no_lease({"role": "primary", "epoch": 3, "lease_remaining_s": 1.5}, 3)


def test_the_pipeline_decides_through_the_rules_the_model_checks():
    """The production modules hold no decision of their own: they call cluster.failover_rules,
    which the protocol model imports (tests/model/control_plane.py)."""
    for module in (failover, failover_claim, failover_steps, switchover, control_plane):
        assert module.rules is rules
