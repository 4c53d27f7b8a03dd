"""The campaign's own parts that need no rig: the schedule replays from its seed at the rate the
acceptance asks for, and the checkers catch what they are for (two serving appliances, an epoch
served twice or skipped, a database epoch going back) and measure outages right."""

from __future__ import annotations

import json

from tests.nemesis import checkers
from tests.nemesis.checkers import Span
from tests.nemesis.schedule import KINDS, draw_schedule

CLUSTERS = ["nemesis-1", "nemesis-2", "nemesis-3", "nemesis-4"]


def test_a_seed_replays_the_same_schedule_and_another_seed_does_not():
    assert draw_schedule(7, 600, CLUSTERS) == draw_schedule(7, 600, CLUSTERS)
    assert draw_schedule(7, 600, CLUSTERS) != draw_schedule(8, 600, CLUSTERS)


def test_an_hour_over_four_clusters_draws_over_500_faults_of_every_kind():
    faults = draw_schedule(12345, 3600, CLUSTERS)
    assert len(faults) >= 500
    assert {f.kind for f in faults} == set(KINDS)


def test_no_target_holds_two_faults_at_once():
    held: dict[str, float] = {}
    for fault in draw_schedule(99, 3600, CLUSTERS):
        key = ("net:" if fault.kind.startswith("net_") else "") + fault.target
        if fault.kind.startswith(("agent_", "net_")) or fault.kind in ("process_kill", "process_pause", "worker_clock"):
            assert held.get(key, 0) <= fault.at, fault.describe()
            held[key] = fault.at + fault.duration


def test_overlapping_serving_of_two_appliances_is_a_violation_and_one_appliance_alone_is_not():
    spans = [Span(0, 4, 1, "a"), Span(3.5, 8, 1, "a"), Span(7.9, 12, 2, "b")]
    found = checkers.overlaps("c", spans)
    assert [(v.kind, v.t) for v in found] == [("overlap", 7.9)]
    assert "0.100s" in found[0].message
    assert checkers.overlaps("c", [Span(0, 4, 1, "a"), Span(4, 8, 2, "b")]) == []


def test_serving_is_cut_where_the_agent_was_killed_and_capped_by_its_stops(tmp_path):
    agent_dir = tmp_path / "agent"
    (agent_dir / "state").mkdir(parents=True)
    (agent_dir / "state-wiped-3").mkdir()
    (agent_dir / "state-wiped-3" / "serving.log").write_text(json.dumps({"start": 0, "end": 4, "epoch": 1}) + "\n")
    lines = [{"start": 10, "end": 14, "epoch": 2}, {"stop": 12}, {"start": 20, "end": 24, "epoch": 2}]
    (agent_dir / "state" / "serving.log").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"sta')

    class Agent:
        name = "a"
        base_dir = agent_dir
        state_dir = agent_dir / "state"

    spans = checkers.agent_spans(Agent, deaths=[2.5, 21])
    assert [(s.start, s.end, s.epoch) for s in spans] == [(0, 2.5, 1), (10, 12, 2), (20, 21, 2)]


def test_an_epoch_served_by_both_appliances_is_reused():
    spans = [Span(0, 4, 1, "a"), Span(10, 14, 2, "b"), Span(20, 24, 2, "a")]
    assert [v.kind for v in checkers.epoch_reuse("c", spans, [])] == ["epoch_reused"]


def test_promotions_must_step_by_one_and_epochs_must_not_go_back():
    completed = [{"t": 1, "epoch": 2, "type": "failover_completed"}, {"t": 2, "epoch": 4, "type": "failover_completed"}]
    assert [v.message for v in checkers.promotions_step_by_one("c", completed)] == [
        "failover_completed at epoch 4, the previous promotion's was 2"
    ]
    db = [{"t": 1, "epoch": 2}, {"t": 2, "epoch": 1}]
    agents = [{"t": 1, "agent": "a", "epoch": 3}, {"t": 5, "agent": "a", "epoch": 0}]
    assert len(checkers.epochs_only_grow("c", db, agents, wipes=[])) == 2
    assert len(checkers.epochs_only_grow("c", [], agents, wipes=[{"t": 3, "agent": "a"}])) == 0


def test_availability_is_the_served_share_and_the_gaps_are_the_outages():
    figures = checkers.availability([Span(0, 4, 1, "a"), Span(3, 6, 1, "a"), Span(8, 10, 2, "b")], 0, 12)
    assert round(figures["share"], 3) == round(8 / 12, 3)
    assert figures["outages"] == [(6, 2), (10, 2)]


def test_an_outage_the_database_kept_calling_healthy_is_reported_once_past_the_bound():
    outages = [(10.0, 30.0), (50.0, 60.0), (120.0, 5.0)]
    samples = [{"t": 0, "state": "healthy"}, {"t": 65, "state": "degraded"}, {"t": 100, "state": "healthy"}]
    # Bound 5: 15–40 said healthy (25 s); 55–65 and 100–110 (20 s); the 5 s outage has nothing past it.
    assert checkers.dark_while_healthy(outages, samples, bound=5) == [(10.0, 30.0, 25.0), (50.0, 60.0, 20.0)]
    assert checkers.dark_while_healthy(outages, samples, bound=20) == []
