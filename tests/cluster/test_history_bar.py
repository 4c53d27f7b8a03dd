"""The 24-hour history bar (cluster/history_bar.py): stretches start when the cluster did, an
outage runs from the primary's first missed heartbeat to the failover, what follows a failover is
"running unprotected" until the old primary is back, and every stretch says its times and length."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from cluster.history_bar import build

PRIMARY, SECONDARY = 1, 2
NAMES = {PRIMARY: "dmm-a", SECONDARY: "dmm-b"}


def cluster(created_hours_ago=48, active=True, primary=PRIMARY):
    return SimpleNamespace(
        primary_id=primary,
        secondary_id=SECONDARY if primary == PRIMARY else PRIMARY,
        created_at=timezone.now() - timedelta(hours=created_hours_ago),
        active=active,
    )


def event(kind, at, server_id=PRIMARY, **details):
    return {"type": kind, "created_at": at, "server_id": server_id, "details": details}


def states(bar):
    return [s.state for s in bar.stretches]


def test_a_quiet_day_is_all_up():
    bar = build(cluster(), [], timezone.now())

    assert [(s.state, s.left, s.width) for s in bar.stretches] == [("up", 0, 100)]
    assert bar.marks == [] and bar.notable == []


def test_nothing_is_drawn_before_the_cluster_was_created():
    now = timezone.now()

    bar = build(cluster(created_hours_ago=6), [], now)

    assert [(s.state, s.left, s.width) for s in bar.stretches] == [("up", 75, 25)]
    assert [(m.kind, m.left) for m in bar.marks] == [("created", 75)]
    assert "Cluster created at" in bar.marks[0].title


def test_an_outage_runs_from_the_first_missed_heartbeat_to_the_failover():
    now = timezone.now()
    declared = now - timedelta(hours=2)
    events = [
        event("server_failed", declared, first_missed_slot_at=(declared - timedelta(seconds=4)).timestamp()),
        event("failover_completed", declared + timedelta(seconds=0.4), server_id=SECONDARY, epoch=2),
    ]

    bar = build(cluster(primary=SECONDARY), events, now, NAMES)

    assert states(bar) == ["up", "outage", "unprotected"]
    outage, unprotected = bar.stretches[1], bar.stretches[2]
    assert (outage.end - outage.start).total_seconds() == pytest.approx(4.4)
    assert outage.title.startswith("Outage 4.4 s: ")
    local = timezone.localtime(outage.start)
    assert f"{local:%H:%M:%S}.{local.microsecond // 100_000} – " in outage.title
    assert "the primary dmm-a had failed" in outage.title
    assert unprotected.open and unprotected.times.endswith("– now") and "dmm-a failed" in unprotected.why
    assert [m.kind for m in bar.marks] == ["failover"]
    assert "dmm-b primary at epoch 2" in bar.marks[0].title
    assert "outage 4.4 s" in bar.summary


def test_a_failed_secondary_is_running_unprotected_not_an_outage():
    now = timezone.now()
    failed = now - timedelta(hours=3)
    events = [
        event("critical_service_failed", failed, server_id=SECONDARY, service="media"),
        event("critical_service_recovered", failed + timedelta(seconds=40), server_id=SECONDARY, service="media"),
    ]

    bar = build(cluster(), events, now, NAMES)

    assert states(bar) == ["up", "unprotected", "up"]
    assert bar.stretches[1].title.startswith("Running unprotected 40.0 s: ")


def test_a_recovery_first_means_the_window_began_with_that_server_down():
    now = timezone.now()

    bar = build(cluster(), [event("server_recovered", now - timedelta(hours=1), server_id=SECONDARY)], now, NAMES)

    assert states(bar) == ["unprotected", "up"]


def test_the_primary_before_the_first_promotion_is_the_other_one():
    now = timezone.now()
    events = [
        event("server_recovered", now - timedelta(hours=5)),  # dmm-a, the primary then, was down
        event("switchover_completed", now - timedelta(hours=1), server_id=SECONDARY),
    ]

    bar = build(cluster(primary=SECONDARY), events, now, NAMES)

    assert states(bar) == ["outage", "up"]
    assert [m.kind for m in bar.marks] == ["switchover"]


def test_the_initial_sync_is_not_called_protected():
    now = timezone.now()
    synced = [{"type": "initial_sync_completed", "created_at": now - timedelta(hours=4), "server_id": None}]

    assert states(build(cluster(created_hours_ago=5), synced, now)) == ["syncing", "up"]
    assert states(build(cluster(created_hours_ago=5, active=False), [], now)) == ["syncing"]


def test_stretches_cover_the_window_from_creation_to_now():
    now = timezone.now()
    events = [
        event("server_failed", now - timedelta(hours=10)),
        event("failover_completed", now - timedelta(hours=10) + timedelta(seconds=1), server_id=SECONDARY),
        event("server_recovered", now - timedelta(hours=9)),
    ]

    bar = build(cluster(created_hours_ago=12, primary=SECONDARY), events, now, NAMES)

    assert states(bar) == ["up", "outage", "unprotected", "up"]
    assert bar.stretches[0].left == 50
    assert sum(s.width for s in bar.stretches) == pytest.approx(50, abs=0.01)
    assert bar.stretches[2].length == "59 min 59 s"
