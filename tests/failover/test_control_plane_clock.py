"""Scenario 4 of the safety-at-defaults issue: the heartbeat worker's clock 0.2 s ahead (libfaketime)
while the appliances' clocks agree with each other. Before: every cluster was failed over for
`clock_skew` again and again (28–29 failovers per cluster in 60 s). Skew is now judged pairwise:
the control plane is blamed, raises its own event, and fails nothing over."""

import glob
import time

import pytest

from alerts.models import Event
from tests.support.agents import wait_until
from tests.support.controlplane import ARTIFACTS, restart_control_plane
from tests.support.processes import celery_worker

pytestmark = pytest.mark.integration

LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
OBSERVE_S = 20.0  # ten slots: before the fix a failover came every slot or two


@pytest.mark.skipif(not LIBFAKETIME, reason="libfaketime is not installed (Debian package faketime)")
def test_a_control_plane_clock_ahead_fails_nothing_over(make_cluster, control_plane):
    clusters = [make_cluster(f"cp-clock-{i}") for i in range(2)]
    control_plane["heartbeat"].kill()
    control_plane["heartbeat"] = celery_worker(
        ARTIFACTS, "heartbeat", "heartbeat", concurrency=2,
        LD_PRELOAD=LIBFAKETIME[0], FAKETIME="+0.2", FAKETIME_DONT_FAKE_MONOTONIC="1",
    )  # fmt: skip
    try:
        for under_test in clusters:
            event = under_test.wait_event("clock_skew_detected", 30)
            assert event.details["blamed"] == "control plane", event.details
            assert "control plane" in event.message
        end = time.monotonic() + OBSERVE_S
        wait_until(lambda: time.monotonic() >= end, OBSERVE_S + 5, message="the observation")
        for under_test in clusters:
            cluster = under_test.refresh()
            assert cluster.epoch == 1, f"{cluster.name} failed over {cluster.epoch - 1} times"
            assert "failover_completed" not in under_test.events()
            # Only the control plane was blamed: no appliance was called skewed.
            skews = Event.objects.filter(cluster=cluster, type="clock_skew_detected")
            assert not skews.exclude(details__blamed="control plane").exists()
            under_test.primary_agent.wait_primary_status(200, timeout=5)
            under_test.assert_never_two_primaries()
    finally:
        restart_control_plane(control_plane, ["heartbeat"])
