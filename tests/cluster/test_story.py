"""The story of an incident, told from its rows without agents or a database (cluster/story/):
every step in order with a millisecond time, who decided and the evidence in words and units; the
outage users saw and how it is derived; the events linked."""

import re
from datetime import UTC, datetime

import pytest

from alerts.models import Event
from cluster import failover_rules
from cluster.choices import FailoverCause, IncidentOutcome, StepKind
from cluster.models import Cluster, Incident, IncidentStep, ReplicationJob, Server
from cluster.story import CAUSES, outage_of, tell

T0 = 1_796_527_350.0  # the last heartbeat the old primary answered
FAILOVER_WORKER = "failover worker on cp-1 (pid 42)"
HEARTBEAT_WORKER = "heartbeat worker on cp-1 (pid 7)"
UNIX_TIME = re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b")


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


def incident(cause="missed_heartbeats", detection=None, outcome="", failure_event_id=11, closed=None) -> Incident:
    return Incident(
        cluster=Cluster(name="signs-hq"),
        cause=cause,
        opened_at=at(2.0),
        closed_at=closed,
        outcome=outcome,
        from_epoch=1,
        old_primary=Server(name="dmm-a"),
        new_primary=Server(name="dmm-b"),
        detection=detection if detection is not None else missed_heartbeats(),
        failure_event_id=failure_event_id,
    )


def missed_heartbeats(**changes) -> dict:
    evidence = {
        "missed_slots": 3,
        "first_missed_slot_at": T0 + 2.0,
        "last_missed_slot_at": T0 + 6.0,
        "interval_s": 2.0,
        "last_answer_at": T0,
        "heartbeat_error": "connection refused",
        "intranet_error": "connection refused",
        "rule": "3 consecutive missed heartbeats spanning ≥ 4 s",
        "failure_event": 11,
        **changes,
    }
    return {
        "cause": "missed_heartbeats",
        "server_id": 1,
        "seen_epoch": 1,
        "requested_at": T0 + 6.004,
        "evidence": evidence,
        "detected_by": HEARTBEAT_WORKER,
    }


def step(kind, offset, event_id=None, actor=FAILOVER_WORKER, **facts) -> IncidentStep:
    return IncidentStep(kind=kind, at=at(offset), actor=actor, facts=facts, event_id=event_id)


def event(pk, event_type, offset) -> Event:
    return Event(pk=pk, type=event_type, created_at=at(offset))


def failover_steps() -> list[IncidentStep]:
    return [
        step(StepKind.CLAIMED, 6.020, step="claimed", epoch=1, pending_epoch=2),
        step(StepKind.FENCED, 6.021, epoch=2),
        step(StepKind.WITNESS, 6.030, secondary="dmm-b", last_answer_age_s=5.03, needed_s=4.0),
        step(
            StepKind.CANDIDACY,
            6.040,
            secondary="dmm-b",
            deadline_s=24.35,
            last_grant_sent_age_s=5.54,
            secondary_last_grant_at=T0 + 0.5,
        ),
        step(
            StepKind.WAIT,
            6.050,
            started_at=T0 + 6.045,
            waited_s=0.0,
            control_plane_last_grant_at=T0 - 0.01,
            secondary_last_grant_at=T0 + 0.5,
            lease_deadline_at=T0 + 4.85,
            lease_s=4.0,
            max_grant_delay=0.25,
            max_clock_skew=0.1,
        ),
        step(
            StepKind.PROMOTED, 6.080, server="dmm-b", epoch=2, sent_at=T0 + 6.060, answered_at=T0 + 6.080, lease_s=4.0
        ),
        step(StepKind.COMMITTED, 6.090, event_id=12, epoch=2, state="degraded", duration_s=0.07),
        step(StepKind.DEMOTED, 7.095, server="dmm-a", epoch=2, ok=False, sent_at=T0 + 6.095, error="timed out"),
        step(StepKind.REJOINED, 40.0, actor="default worker on cp-1 (pid 9)", server="dmm-a", epoch=2, primary="dmm-b"),
        step(StepKind.RECOVERED, 42.0, event_id=13, actor=HEARTBEAT_WORKER, server="dmm-a", answers=2),
        step(StepKind.HEALTHY, 52.0, actor=HEARTBEAT_WORKER),
    ]


EVENTS = {
    11: event(11, "server_failed", 6.003),
    12: event(12, "failover_completed", 6.090),
    13: event(13, "server_recovered", 42.0),
}


def resync_job() -> ReplicationJob:
    return ReplicationJob(
        pk=5,
        kind="resync",
        state="succeeded",
        source=Server(name="dmm-b"),
        target=Server(name="dmm-a"),
        epoch=2,
        files_done=42,
        bytes_done=3 * 1024 * 1024,
        quarantined=1,
        started_at=at(41.0),
        finished_at=at(50.5),
    )


def told_failover():
    done = incident(outcome=IncidentOutcome.HEALTHY, closed=at(52.0))
    return tell(done, failover_steps(), EVENTS, [resync_job()])


def test_a_failover_is_told_from_the_last_answer_to_healthy_again_in_order():
    story = told_failover()

    assert [s.kind for s in story.steps] == [
        "last_answer",
        "missed",
        "missed",
        "missed",
        "failure",
        "requested",
        "claimed",
        "fenced",
        "witness",
        "candidacy",
        "wait",
        "promoted",
        "committed",
        "demoted",
        "rejoined",
        "resync_started",
        "recovered",
        "resync_finished",
        "healthy",
    ]
    assert [s.title for s in story.steps[1:4]] == [
        "Missed heartbeat 1 of 3",
        "Missed heartbeat 2 of 3",
        "Missed heartbeat 3 of 3",
    ]
    assert [s.at for s in story.steps[1:4]] == [at(2.0), at(4.0), at(6.0)]
    assert story.title == "Failover of signs-hq: dmm-b took over from dmm-a"
    assert story.state_label == "Healthy again"


def test_each_step_has_a_millisecond_time_an_offset_and_who_decided():
    story = told_failover()
    steps = {s.kind: s for s in story.steps}

    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", steps["promoted"].time)
    assert steps["last_answer"].offset_s == 0.0 and steps["promoted"].offset_s == 6.08
    assert steps["missed"].actor == HEARTBEAT_WORKER and steps["requested"].actor == HEARTBEAT_WORKER
    assert steps["claimed"].actor == FAILOVER_WORKER
    assert steps["resync_started"].actor == "replication job #5"
    assert steps["rejoined"].actor.startswith("default worker")


def test_the_evidence_is_in_words_and_units_never_unix_times():
    story = told_failover()
    steps = {s.kind: s for s in story.steps}

    assert "3 heartbeats missed in a row over 6 s since its last answer" in steps["failure"].evidence
    assert "(heartbeat URL: connection refused; intranet URL: connection refused)" in story.steps[3].evidence
    assert "dmm-b last heard dmm-a 5.03 s before" in steps["witness"].evidence
    assert "at least the 4 s the rule asks" in steps["witness"].evidence
    assert "stopped granting leases" in steps["candidacy"].evidence
    wait = steps["wait"].evidence
    assert "ran out at" in wait and "lease 4 s + grant delay 0.25 s + clock skew 0.1 s" in wait
    assert "(by the secondary)" in wait and "waited 0 s" in wait
    assert "answered in 20 ms" in steps["promoted"].evidence
    assert "did not take its demotion to secondary (timed out)" in steps["demoted"].evidence
    assert steps["demoted"].title == "Old primary not reached"
    assert "42 files (3.0 MB) copied, 1 quarantined" in steps["resync_finished"].evidence
    for told in story.steps:
        assert not UNIX_TIME.search(told.evidence), told.evidence
    assert not UNIX_TIME.search(story.summary + story.outage.derivation)


def test_the_outage_runs_from_the_last_moment_the_old_primary_served_to_the_new_one_serving():
    story = told_failover()

    # The secondary heard dmm-a last at 6.030 − 5.03 = 1.000 s, later than the control plane (0 s).
    assert story.outage.seconds == pytest.approx(6.08 - 1.0)
    assert story.outage.bound == "at_most"
    assert story.outage.start == at(1.0) and story.outage.end == at(6.08)
    assert "dmm-a last answered a heartbeat (to dmm-b)" in story.outage.derivation
    assert "acknowledged its promotion" in story.outage.derivation
    assert "if it crashed, it stopped before the heartbeat of" in story.outage.derivation
    assert "which it missed, and the outage was at least 4.08 s" in story.outage.derivation
    assert "if it was only cut off, it served until its lease ran out at" in story.outage.derivation
    assert "and the outage was 1.23 s" in story.outage.derivation
    assert "users were without service for at most 5.08 s" in story.summary
    assert "Healthy again at" in story.summary and "50 s after the first sign" in story.summary


def test_without_the_secondarys_view_the_outage_starts_at_the_control_planes_last_answer():
    steps = [s for s in failover_steps() if s.kind != StepKind.WITNESS]

    outage = outage_of(incident(), steps)

    assert outage.seconds == pytest.approx(6.08)
    assert "dmm-a last answered a heartbeat (to the control plane)" in outage.derivation


def test_a_primary_the_control_plane_never_heard_is_timed_from_the_secondarys_view():
    detection = missed_heartbeats(last_answer_at=None)

    story = tell(incident(detection=detection), failover_steps(), EVENTS, [])

    assert "last_answer" not in [s.kind for s in story.steps]
    assert story.outage.start == at(1.0) and "(to dmm-b)" in story.outage.derivation
    assert "over 6 s since its last answer" not in {s.kind: s for s in story.steps}["failure"].evidence


def test_the_failure_failover_and_recovery_events_are_linked_in_order():
    story = told_failover()

    assert [(e.id, e.role, e.label) for e in story.events] == [
        (11, "failure", "Server failed"),
        (12, "failover", "Failover completed"),
        (13, "recovery", "Server recovered"),
    ]
    steps = {s.kind: s for s in story.steps}
    assert steps["failure"].event.id == 11 and steps["committed"].event.id == 12 and steps["recovered"].event.id == 13


def test_the_api_facts_carry_times_as_iso_8601_with_milliseconds():
    facts = {s.kind: s.facts for s in told_failover().steps}

    assert facts["promoted"]["answered_at"].endswith(".080Z")
    assert facts["wait"]["lease_s"] == 4.0


def test_a_switchover_names_the_operator_and_measures_from_the_demotion():
    detection = {"cause": "switchover", "requested_at": T0, "requested_by": "alice", "seen_epoch": 1, "server_id": 1}
    steps = [
        step(StepKind.CLAIMED, 0.01, step="claimed", epoch=1, pending_epoch=2),
        step(StepKind.FENCED, 0.011, epoch=2),
        step(StepKind.WITNESS, 0.02, secondary="dmm-b", last_answer_age_s=0.4, needed_s=None),
        step(StepKind.CANDIDACY, 0.03, secondary="dmm-b", deadline_s=24.35, last_grant_sent_age_s=None),
        step(StepKind.DEMOTED, 0.05, server="dmm-a", epoch=2, ok=True, sent_at=T0 + 0.04),
        step(StepKind.WAIT, 0.05, ended_by_demotion=True),
        step(StepKind.PROMOTED, 0.08, server="dmm-b", epoch=2, sent_at=T0 + 0.06, answered_at=T0 + 0.08, lease_s=4.0),
        step(StepKind.COMMITTED, 0.09, event_id=12, epoch=2, state="healthy", duration_s=0.08),
        step(StepKind.HEALTHY, 0.09, switchover=True),
    ]
    done = incident(cause="switchover", detection=detection, failure_event_id=None, outcome="healthy")

    story = tell(done, steps, {12: event(12, "switchover_completed", 0.09)}, [])

    assert story.kind == "switchover" and story.title.startswith("Switchover of signs-hq")
    assert story.steps[0].kind == "requested" and story.steps[0].actor == "operator alice"
    assert story.outage.seconds == pytest.approx(0.04) and story.outage.bound == "at_most"
    assert "was sent its demotion" in story.outage.derivation
    kinds = [s.kind for s in story.steps]
    assert kinds.index("demoted") < kinds.index("wait") < kinds.index("promoted")
    assert "Ended at once" in {s.kind: s for s in story.steps}["wait"].evidence
    assert "protected at once" in story.steps[-1].evidence


def test_an_abandoned_failover_says_why_and_has_no_outage():
    steps = [
        step(StepKind.CLAIMED, 6.02, step="claimed", epoch=1, pending_epoch=2),
        step(StepKind.FENCED, 6.021, epoch=2),
        step(StepKind.WITNESS, 6.03, secondary="dmm-b", last_answer_age_s=0.7, needed_s=4.0),
        step(StepKind.ABANDONED, 6.04, event_id=14, reason="the secondary still hears the primary (0.70 s ago)"),
    ]
    done = incident(outcome=IncidentOutcome.ABANDONED)

    story = tell(done, steps, {**EVENTS, 14: event(14, "failover_abandoned", 6.04)}, [])

    assert story.outage is None
    assert story.summary == "Abandoned after missed heartbeats: the secondary still hears the primary (0.70 s ago)."
    assert "heard dmm-a only 0.7 s before" in {s.kind: s for s in story.steps}["witness"].evidence
    assert [e.id for e in story.events] == [11, 14]


def test_a_worker_that_took_over_an_expired_claim_says_so():
    steps = [
        step(StepKind.CLAIMED, 6.02, step="claimed", epoch=1, pending_epoch=2),
        step(StepKind.FENCED, 6.021, epoch=2),
        step(StepKind.CLAIMED, 12.0, actor="failover worker on cp-2 (pid 5)", step="wait", epoch=1, pending_epoch=2),
    ]

    story = tell(incident(), steps, EVENTS, [])

    claims = [s for s in story.steps if s.kind == "claimed"]
    assert [c.title for c in claims] == ["Claimed", "Claim taken over"]
    assert "resumes at step “wait”" in claims[1].evidence and claims[1].actor.endswith("(pid 5)")
    assert story.summary.startswith("Failing over after missed heartbeats since")


def test_missed_slots_that_were_not_all_probed_show_the_first_and_the_last():
    detection = missed_heartbeats(missed_slots=3, first_missed_slot_at=T0 + 2.0, last_missed_slot_at=T0 + 10.0)

    story = tell(incident(detection=detection), [], EVENTS, [])

    missed = [s for s in story.steps if s.kind == "missed"]
    assert [s.at for s in missed] == [at(2.0), at(10.0)]


def test_a_critical_service_failure_counts_the_outage_from_its_detection_at_least():
    detection = {
        "cause": "critical_service",
        "requested_at": T0 + 6.0,
        "evidence": {"service": "media", "consecutive_failures": 3, "rule": "3 failed checks", "failure_event": 11},
        "detected_by": HEARTBEAT_WORKER,
    }
    steps = [step(StepKind.PROMOTED, 7.0, server="dmm-b", epoch=2, sent_at=T0 + 6.9, answered_at=T0 + 7.0)]

    failure = {11: event(11, "critical_service_failed", 5.99)}

    story = tell(incident(cause="critical_service", detection=detection), steps, failure, [])

    assert story.outage.seconds == pytest.approx(1.0) and story.outage.bound == "at_least"
    assert story.steps[0].title == "Critical service failed"
    assert "Critical service media failed 3 checks in a row on dmm-a" in story.steps[0].evidence
    assert "Cause: a failed critical service" in story.steps[1].evidence


def test_every_cause_the_pipeline_knows_has_a_name():
    assert set(FailoverCause.values) == {*failover_rules.AUTOMATIC, "switchover"} == set(CAUSES)
