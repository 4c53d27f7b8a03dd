"""The heartbeat's evaluation rules (cluster/heartbeat/evaluate.py), one test per rule of
docs/protocol.md that a slot's evaluation applies: plain values in, decisions out. No agent, Redis,
database or Celery: the readings are made from answers as the probe would have them
(`read_slot`), and the counts and streaks are what Redis would answer after the slot."""

from __future__ import annotations

from dataclasses import replace

import pytest

from alerts.choices import EventType
from cluster import failover_rules as rules
from cluster.agent_client import AgentAnswer
from cluster.heartbeat.decisions import (
    Adopt,
    ClockBack,
    CloseIncident,
    MarkDown,
    MarkSkewed,
    MarkUp,
    MirrorRole,
    OpenIncident,
    ReconcileSecondary,
    RequestFailover,
    SetClusterState,
)
from cluster.heartbeat.evaluate import CONTROL_PLANE, SKEW_READINGS, Slot, evaluate
from cluster.heartbeat.probe import ServerProbe, SlotProbe, may_grant
from cluster.heartbeat.readings import read_slot
from cluster.heartbeat.state import SlotCount, incident_key
from cluster.heartbeat.views import ClusterView, ServerView

INTERVAL, THRESHOLD, RECOVERY = 2.0, 3, 2
SLOT_TIME = 1_000_000.0  # the control plane's wall clock at this slot
LOADED = {"_loaded": "1"}


def server(pk: int, name: str, role: str, state: str = "up") -> ServerView:
    return ServerView(pk, name, "http://hb", "http://intranet", "token", state, role)


def cluster(**changes) -> ClusterView:
    view = ClusterView(
        id=1, name="c1", epoch=5, grant_fence_epoch=5, interval=INTERVAL, lease_s=4.0, threshold=THRESHOLD,
        recovery_threshold=RECOVERY, max_clock_skew=0.1, max_grant_delay=0.25, state="healthy", maintenance=False,
        active=True, has_request=False, replication_current=True,
        primary=server(10, "a", "primary"), secondary=server(11, "b", "secondary"),
    )  # fmt: skip
    return replace(view, **changes)


def answer(role: str, *, epoch: int = 5, offset: float = 0.0, **body) -> ServerProbe:
    """An answer that left at SLOT_TIME and came back 2 ms later, from a clock `offset` s off."""
    sent, received = SLOT_TIME, SLOT_TIME + 0.002
    fields = {"role": role, "epoch": epoch, "lease_remaining_s": 4.0, "now": (sent + received) / 2 + offset, **body}
    return ServerProbe(AgentAnswer(200, fields, sent_wall=sent, received_wall=received))


def silent() -> ServerProbe:
    return ServerProbe(AgentAnswer(0, error="no answer within 0.9 s"), AgentAnswer(0, error="cannot connect"))


def answered(answers: int = 10) -> SlotCount:
    return SlotCount(True, 0, None, answers)


def missed(misses: int, first_miss_at: float | None = None) -> SlotCount:
    first = SLOT_TIME - (misses - 1) * INTERVAL if first_miss_at is None else first_miss_at
    return SlotCount(True, misses, first, 0)


def slot(
    view: ClusterView | None = None, primary: ServerProbe | None = None, secondary: ServerProbe | None = None,
    *, counts: tuple[SlotCount, SlotCount] | None = None, streaks: dict | None = None,
    open_primary: dict | None = None, open_secondary: dict | None = None, skewed: frozenset = frozenset(),
) -> Slot:  # fmt: skip
    """A slot of `view`: both appliances answer in step unless told otherwise; each streak its
    readings bump is at 1 unless `streaks` says more."""
    view = view or cluster()
    probe = SlotProbe(
        view, int(SLOT_TIME / INTERVAL), SLOT_TIME, primary or answer("primary"), secondary or answer("secondary")
    )
    readings = read_slot(probe)
    counts = counts or (
        answered() if probe.primary.answered else missed(1),
        answered() if probe.secondary.answered else missed(1),
    )
    bumped = {name: 1 for name, _ in readings.streaks} | (streaks or {})
    return Slot(
        probe, *counts, bumped, readings, {**LOADED, **(open_primary or {})}, {**LOADED, **(open_secondary or {})},
        skewed,
    )  # fmt: skip


def of(decisions, kind) -> list:
    return [d for d in decisions if isinstance(d, kind)]


def failover(decisions) -> RequestFailover | None:
    requests = of(decisions, RequestFailover)
    assert len(requests) <= 1  # one request a slot: the first cause found
    return requests[0] if requests else None


def opened(decisions, failure) -> list[OpenIncident]:
    return [d for d in of(decisions, OpenIncident) if d.failure == failure]


def is_open(failure, name: str = "", event_id: int = 77) -> dict:
    return {incident_key(failure, name): str(event_id)}


# -- the steady state ---------------------------------------------------------------------------------


def test_a_healthy_cluster_whose_appliances_answer_in_step_decides_nothing():
    assert evaluate(slot()) == []


# -- misses (DESIGN §4a rules 3 and 5) ----------------------------------------------------------------


def test_n_missed_heartbeats_spanning_n_minus_1_intervals_fail_the_primary_over():
    decisions = evaluate(slot(primary=silent(), counts=(missed(THRESHOLD), answered())))

    (down,) = of(decisions, MarkDown)
    assert down.server.name == "a" and down.evidence["missed_slots"] == THRESHOLD
    request = failover(decisions)
    assert request.cause == "missed_heartbeats" and request.damping_window_s == 0
    assert request.failure.failure == EventType.SERVER_FAILED and request.failure.server.name == "a"
    assert request.evidence["heartbeat_error"] == "no answer within 0.9 s"
    assert request.evidence["intranet_error"] == "cannot connect"
    assert SetClusterState("degraded", False) in decisions


def test_fewer_misses_or_a_shorter_span_fail_nothing():
    assert evaluate(slot(primary=silent(), counts=(missed(THRESHOLD - 1), answered()))) == []
    # N misses counted within less than (N−1) intervals (a burst of late slots): not yet.
    burst = missed(THRESHOLD, first_miss_at=SLOT_TIME - (THRESHOLD - 1) * INTERVAL + 0.5)
    assert evaluate(slot(primary=silent(), counts=(burst, answered()))) == []


def test_a_primary_already_down_is_requested_again_at_every_later_miss():
    view = cluster(primary=server(10, "a", "primary", state="down"), state="degraded")
    decisions = evaluate(slot(view, primary=silent(), counts=(missed(THRESHOLD + 4), answered())))

    assert of(decisions, MarkDown) == []  # down already: no second server_failed
    assert failover(decisions).cause == "missed_heartbeats"


def test_a_missing_secondary_is_marked_down_and_nothing_fails_over():
    decisions = evaluate(slot(secondary=silent(), counts=(answered(), missed(THRESHOLD))))

    assert [d.server.name for d in of(decisions, MarkDown)] == ["b"]
    assert failover(decisions) is None
    assert SetClusterState("degraded", False) in decisions


def test_r_answers_in_a_row_bring_a_server_back_and_the_cluster_healthy():
    view = cluster(secondary=server(11, "b", "secondary", state="down"), state="degraded")

    assert of(evaluate(slot(view, counts=(answered(), answered(RECOVERY - 1)))), MarkUp) == []
    decisions = evaluate(slot(view, counts=(answered(), answered(RECOVERY))))
    assert [(d.server.name, d.answers) for d in of(decisions, MarkUp)] == [("b", RECOVERY)]
    assert SetClusterState("healthy", True) in decisions


def test_a_cluster_without_current_replication_stays_degraded():
    assert evaluate(slot(cluster(replication_current=False))) == [SetClusterState("degraded", False)]


# -- checks (DESIGN §4.3) --------------------------------------------------------------------------


def failing(name: str = "dmm", critical: bool = True, failures: int = THRESHOLD) -> dict:
    return {"name": name, "ok": False, "critical": critical, "consecutive_failures": failures}


def test_a_critical_service_failing_n_checks_on_the_primary_is_a_damped_cause():
    decisions = evaluate(slot(primary=answer("primary", services=[failing()])))

    (event,) = opened(decisions, EventType.CRITICAL_SERVICE_FAILED)
    assert event.name == "dmm" and event.details["consecutive_failures"] == THRESHOLD
    request = failover(decisions)
    assert request.cause == "critical_service"
    assert request.damping_window_s == rules.DAMPING_INTERVALS * INTERVAL
    assert request.failure.name == "dmm"


def test_a_critical_service_failing_fewer_checks_is_nothing_yet():
    assert evaluate(slot(primary=answer("primary", services=[failing(failures=THRESHOLD - 1)]))) == []


def test_a_critical_service_failing_on_the_secondary_is_an_event_only():
    decisions = evaluate(slot(secondary=answer("secondary", services=[failing()])))

    assert [d.server.name for d in opened(decisions, EventType.CRITICAL_SERVICE_FAILED)] == ["b"]
    assert failover(decisions) is None


def test_an_open_critical_failure_is_requested_again_without_a_second_event():
    decisions = evaluate(
        slot(
            primary=answer("primary", services=[failing()]),
            open_primary=is_open(EventType.CRITICAL_SERVICE_FAILED, "dmm"),
        )
    )

    assert opened(decisions, EventType.CRITICAL_SERVICE_FAILED) == []
    assert failover(decisions).cause == "critical_service"


def test_a_passing_service_closes_its_open_failure():
    passing = {"name": "dmm", "ok": True, "critical": True, "consecutive_failures": 0}
    decisions = evaluate(
        slot(
            primary=answer("primary", services=[passing]),
            open_primary=is_open(EventType.CRITICAL_SERVICE_FAILED, "dmm"),
        )
    )

    (close,) = of(decisions, CloseIncident)
    assert (close.failure, close.name) == (EventType.CRITICAL_SERVICE_FAILED, "dmm")


def test_a_failing_component_is_an_event_and_never_a_failover():
    decisions = evaluate(slot(primary=answer("primary", components=[{"name": "cache", "ok": False}])))

    assert [d.name for d in opened(decisions, EventType.COMPONENT_FAILED)] == ["cache"]
    assert failover(decisions) is None


def test_a_non_critical_service_is_not_checked():
    assert evaluate(slot(primary=answer("primary", services=[failing(critical=False)]))) == []


# -- clocks: skew is blamed pairwise (DESIGN §4a rule 4; docs/protocol.md) -----------------------------


def test_a_primary_whose_clock_alone_is_off_for_n_readings_is_skewed_and_a_damped_cause():
    decisions = evaluate(slot(primary=answer("primary", offset=1.0), streaks={"primary_skew": SKEW_READINGS}))

    assert MarkSkewed(cluster().primary) in decisions
    (event,) = opened(decisions, EventType.CLOCK_SKEW_DETECTED)
    assert event.name == "" and event.details["readings"] == SKEW_READINGS
    request = failover(decisions)
    assert request.cause == "clock_skew" and request.damping_window_s == rules.DAMPING_INTERVALS * INTERVAL


def test_fewer_skewed_readings_are_nothing_yet():
    assert evaluate(slot(primary=answer("primary", offset=1.0), streaks={"primary_skew": SKEW_READINGS - 1})) == []


def test_a_skewed_secondary_gets_no_grants_and_fails_nothing_over():
    decisions = evaluate(slot(secondary=answer("secondary", offset=1.0), streaks={"secondary_skew": SKEW_READINGS}))

    assert MarkSkewed(cluster().secondary) in decisions
    assert failover(decisions) is None


def test_a_clock_off_is_not_blamed_without_the_other_appliances_reading():
    decisions = evaluate(
        slot(primary=answer("primary", offset=1.0), secondary=silent(), streaks={"primary_skew": SKEW_READINGS})
    )

    assert of(decisions, MarkSkewed) == [] and failover(decisions) is None


def test_both_appliances_agreeing_against_the_control_plane_blame_its_clock_only():
    decisions = evaluate(
        slot(
            primary=answer("primary", offset=0.2),
            secondary=answer("secondary", offset=0.2),
            streaks={"primary_skew": 9, "secondary_skew": 9, "control_plane_skew": SKEW_READINGS},
        )
    )

    (event,) = opened(decisions, EventType.CLOCK_SKEW_DETECTED)
    assert event.name == CONTROL_PLANE and event.server.name == "a" and event.details["blamed"] == "control plane"
    assert of(decisions, MarkSkewed) == []  # no grants stopped
    assert failover(decisions) is None


def test_the_control_plane_clock_event_is_closed_where_it_was_opened_after_a_failover():
    # Opened among the primary's incidents; a failover since made that server the secondary.
    decisions = evaluate(
        slot(
            streaks={"control_plane_skew": SKEW_READINGS},
            open_secondary=is_open(EventType.CLOCK_SKEW_DETECTED, CONTROL_PLANE),
        )
    )

    (close,) = of(decisions, CloseIncident)
    assert (close.server.name, close.name) == ("b", CONTROL_PLANE)


def test_a_clock_back_in_step_for_n_readings_leaves_the_skewed_set():
    decisions = evaluate(slot(streaks={"primary_skew": SKEW_READINGS}, skewed=frozenset({10})))

    (back,) = of(decisions, ClockBack)
    assert back.close.server.name == "a" and back.close.failure == EventType.CLOCK_SKEW_DETECTED


def test_a_skewed_set_lost_with_redis_is_restored_from_the_open_incident():
    decisions = evaluate(slot(open_primary=is_open(EventType.CLOCK_SKEW_DETECTED)))

    assert decisions[0] == MarkSkewed(cluster().primary, restored=True)
    assert of(decisions, ClockBack) == []  # one reading in step: not back yet


# -- a primary that does not serve -------------------------------------------------------------------


def test_a_primary_holding_no_lease_for_n_slots_is_not_serving():
    dark = answer("primary", lease_remaining_s=0)

    assert evaluate(slot(primary=dark, streaks={"dark": THRESHOLD - 1})) == []
    request = failover(evaluate(slot(primary=dark, streaks={"dark": THRESHOLD})))
    assert request.cause == "not_serving" and request.evidence["slots_without_lease"] == THRESHOLD
    assert request.damping_window_s == rules.DAMPING_INTERVALS * INTERVAL


def test_a_dark_primary_with_a_failing_critical_service_is_failed_over_for_the_service():
    dark = answer("primary", lease_remaining_s=0, services=[failing()])

    assert failover(evaluate(slot(primary=dark, streaks={"dark": THRESHOLD}))).cause == "critical_service"


def test_a_primary_that_does_not_hold_its_role_makes_the_database_adopt_and_fail_over():
    decisions = evaluate(slot(primary=answer("secondary", epoch=6, seq=40)))

    assert Adopt(6, 40) in decisions
    assert MirrorRole(cluster().primary, "secondary") in decisions
    request = failover(decisions)
    assert request.cause == "agents_disagree" and request.damping_window_s == 0


@pytest.mark.parametrize("changes", [{"state": "failing_over"}, {"has_request": True}])
def test_a_disagreeing_primary_during_a_failover_is_left_to_the_failover(changes):
    decisions = evaluate(slot(cluster(**changes), primary=answer("secondary", epoch=6, seq=40)))

    assert of(decisions, Adopt) == [] and failover(decisions) is None


# -- what is never a failover --------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [{"maintenance": True}, {"active": False}, {"state": "syncing"}])
def test_a_cluster_in_maintenance_inactive_or_syncing_never_fails_over(changes):
    decisions = evaluate(slot(cluster(**changes), primary=silent(), counts=(missed(THRESHOLD), answered())))

    assert of(decisions, MarkDown)  # the events still say so
    assert failover(decisions) is None


def test_a_heartbeat_link_down_on_one_side_is_an_event_never_a_failover():
    cut = answer("secondary", peer={"ok": False, "last_answer_age_s": 7.5})

    assert evaluate(slot(secondary=cut, streaks={"link": THRESHOLD - 1})) == []
    decisions = evaluate(slot(secondary=cut, streaks={"link": THRESHOLD}))
    (event,) = opened(decisions, EventType.HEARTBEAT_LINK_DOWN)
    assert event.details["secondary_sees_primary"] is False and event.details["readings"] == THRESHOLD
    assert failover(decisions) is None


def test_a_primary_reached_on_its_intranet_url_only_is_a_link_fault():
    via_intranet = ServerProbe(AgentAnswer(0, error="no answer"), answer("primary").via_heartbeat)
    decisions = evaluate(slot(primary=via_intranet, streaks={"link": THRESHOLD}))

    (event,) = opened(decisions, EventType.HEARTBEAT_LINK_DOWN)
    assert event.details["control_plane_heartbeat_url"] == "failed"
    assert failover(decisions) is None


def test_a_link_working_again_for_r_readings_closes_its_event_and_the_cluster_is_healthy_next():
    decisions = evaluate(
        slot(cluster(state="degraded"), streaks={"link": RECOVERY}, open_primary=is_open(EventType.HEARTBEAT_LINK_DOWN))
    )

    assert [d.failure for d in of(decisions, CloseIncident)] == [EventType.HEARTBEAT_LINK_DOWN]
    assert of(decisions, SetClusterState) == []  # judged on the incidents read with the slot


def test_a_link_event_is_closed_where_it_was_opened_after_a_failover():
    # Found by the fault campaign (CI, seed 1826980234): the primary's link went down, a failover
    # followed, and the event, kept among the old primary's incidents, was looked for among the new
    # primary's only: never closed, 80 s after every fault had healed.
    decisions = evaluate(slot(streaks={"link": RECOVERY}, open_secondary=is_open(EventType.HEARTBEAT_LINK_DOWN)))

    (close,) = of(decisions, CloseIncident)
    assert (close.failure, close.server.name) == (EventType.HEARTBEAT_LINK_DOWN, "b")


def test_only_the_first_cause_is_requested():
    # The primary's critical service fails and its clock is off: the service, found first.
    primary = answer("primary", offset=1.0, services=[failing()])
    decisions = evaluate(slot(primary=primary, streaks={"primary_skew": SKEW_READINGS}))

    assert failover(decisions).cause == "critical_service"


# -- the secondary -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{"role": "primary"}, {"role": "secondary", "epoch": 4}, {"role": "unconfigured"}])
def test_a_secondary_not_secondary_at_the_clusters_epoch_is_reconciled(body):
    decisions = evaluate(slot(secondary=answer(**body)))

    assert ReconcileSecondary() in decisions
    assert evaluate(slot(cluster(has_request=True), secondary=answer(**body))).count(ReconcileSecondary()) == 0


def test_a_candidate_secondary_is_left_alone():
    assert ReconcileSecondary() not in evaluate(slot(secondary=answer("candidate")))


# -- grants (DESIGN §4a rules 2 and 3) -------------------------------------------------------------------


def test_no_grant_to_a_skewed_primary_nor_below_the_fence():
    assert may_grant(cluster(), skewed=set())
    assert not may_grant(cluster(), skewed={10})
    assert may_grant(cluster(), skewed={11})  # the secondary's clock does not stop the primary's grants
    assert not may_grant(cluster(grant_fence_epoch=6), skewed=set())
