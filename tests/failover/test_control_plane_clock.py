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
from tests.support.serving import clock

pytestmark = pytest.mark.integration

LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
OBSERVE_S = 20.0  # ten slots: before the fix a failover came every slot or two


def _heartbeat_worker_ahead(control_plane, offset: str = "+0.2") -> None:
    """The session's heartbeat worker started again with its wall clock `offset` seconds off."""
    control_plane["heartbeat"].kill()
    control_plane["heartbeat"] = celery_worker(
        ARTIFACTS, "heartbeat", "heartbeat", concurrency=2,
        LD_PRELOAD=LIBFAKETIME[0], FAKETIME=offset, FAKETIME_DONT_FAKE_MONOTONIC="1",
    )  # fmt: skip


@pytest.mark.skipif(not LIBFAKETIME, reason="libfaketime is not installed (Debian package faketime)")
def test_a_control_plane_clock_ahead_fails_nothing_over(make_cluster, control_plane):
    clusters = [make_cluster(f"cp-clock-{i}") for i in range(2)]
    _heartbeat_worker_ahead(control_plane)
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


@pytest.mark.skipif(not LIBFAKETIME, reason="libfaketime is not installed (Debian package faketime)")
def test_a_failover_worker_clock_ahead_never_ends_a_lease_wait_early(make_cluster, control_plane):
    """The failover worker's clock 1 s ahead of the heartbeat worker's, which recorded the last
        grant. Before: the wait compared this worker's wall clock with that record and ended 1 s early,
        while the old primary still held its lease: two primaries. Now grants are recorded, and waits
        counted, on Redis's clock. A lease of 10 s (this test is about the wait) makes the wait outlast
        detection; the secondary's link to the primary is cut, then the primary's answers to the control
    plane are lost while its requests (and grants) still arrive."""
    under_test = make_cluster("failover-clock", proxied=True, lease_s=10.0)
    control_plane["failover"].kill()
    control_plane["failover"] = celery_worker(
        ARTIFACTS, "failover", "failover", concurrency=2,
        LD_PRELOAD=LIBFAKETIME[0], FAKETIME="+1",  # monotonic faked too: 0.9.10 fails time.sleep otherwise
    )  # fmt: skip
    try:
        proxies = under_test.proxies[under_test.primary_agent.name].values()
        # The secondary's grants stop first (its link to the primary cut): from then on only the
        # control plane's grants keep the primary serving, and the last of them bounds the wait.
        for proxy in proxies:
            proxy.set("peer", "black_hole")
        end = time.monotonic() + 3 * under_test.cluster.heartbeat_interval
        wait_until(lambda: time.monotonic() >= end, 15, message="the secondary to stop granting")
        for proxy in proxies:
            proxy.set("control", "drop_answer")
        cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 60, "the failover")
        assert cluster.primary.name == under_test.secondary_agent.name
        under_test.secondary_agent.wait_primary_status(200, timeout=5)
        # The new primary served only once the wait's deadline had passed in real time (the
        # deadline is on Redis's clock, this host's): its first serving moment, moved from the
        # agents' clock to the wall clock, is not before it.
        deadline = under_test.wait_event("failover_completed", 5).details["lease_deadline"]
        first_served = under_test.secondary_agent.serving_intervals()[0][0] + (time.time() - clock())
        assert first_served >= deadline - 0.05, f"promoted {deadline - first_served:.2f} s before the deadline"
        under_test.assert_never_two_primaries()
    finally:
        restart_control_plane(control_plane, ["failover"])


@pytest.mark.skipif(not LIBFAKETIME, reason="libfaketime is not installed (Debian package faketime)")
def test_the_control_plane_clock_event_is_resolved_after_a_failover_moved_the_primary(make_cluster, control_plane):
    """Found by the fault campaign (seed 531249867): the event is kept among the primary's incidents,
    and after a failover only the new primary's were looked at: it was never resolved."""
    under_test = make_cluster("cp-clock-moved")
    _heartbeat_worker_ahead(control_plane)
    try:
        detected = under_test.wait_event("clock_skew_detected", 30)
        under_test.primary_agent.terminate()
        under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    finally:
        restart_control_plane(control_plane, ["heartbeat"])
    under_test.primary_agent.start()  # back, as the secondary: both clocks read again
    under_test.primary_agent.wait_ready()

    resolved = under_test.wait_event("clock_skew_resolved", 40)
    assert resolved.recovers_id == detected.pk
    under_test.assert_never_two_primaries()
