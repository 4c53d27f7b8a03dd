"""The fault matrix, outages: the control plane and the secondary both stopped (the primary stops
serving when its lease ends: nobody can vouch for it), and a flapping primary (at most one
failover)."""

import signal
import time

import pytest

from tests.support.agents import wait_until
from tests.support.serving import clock

pytestmark = pytest.mark.integration


def test_with_control_plane_and_secondary_stopped_the_primary_stops_at_lease_end(make_cluster, control_plane):
    under_test = make_cluster("alone", notify=True)
    cluster = under_test.cluster
    bound = cluster.effective_lease_s + cluster.max_grant_delay + cluster.max_clock_skew

    for process in control_plane.values():
        process.signal(signal.SIGSTOP)
    under_test.secondary_agent.stop()
    stopped = clock()
    try:
        under_test.primary_agent.wait_primary_status(503, timeout=bound + 2)
        stopped_serving = clock() - stopped
    finally:
        under_test.secondary_agent.cont()
        for process in control_plane.values():
            process.signal(signal.SIGCONT)

    assert stopped_serving <= bound + 0.5, f"served {stopped_serving:.2f} s past the last possible grant"
    # The log agrees: no lease held at the stop ran past the last grant's. (Read after SIGCONT: a
    # new interval may have begun since, once grants resumed.)
    held = [end for start, end in under_test.primary_agent.serving_intervals() if start <= stopped]
    assert held and held[-1] <= stopped + bound
    under_test.primary_agent.wait_primary_status(200, timeout=15)  # grants resume once both are back
    assert under_test.refresh().epoch == 1
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)  # stopped (SIGSTOP) and continued: no crash


def test_a_flapping_primary_fails_over_at_most_once(make_cluster):
    """Down and up every second for 30 s (SIGSTOP for 1 s, SIGCONT for 1 s)."""
    under_test = make_cluster("flapping", notify=True)
    primary = under_test.primary_agent

    end = time.monotonic() + 30
    while time.monotonic() < end:
        primary.stop()
        _hold(1.0)
        primary.cont()
        _hold(1.0)

    cluster = under_test.wait_state(lambda c: c.state != "failing_over", 30, "any failover to finish")
    failovers = under_test.events("failover_completed")
    assert len(failovers) <= 1 and cluster.epoch == 1 + len(failovers)
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)


def _hold(seconds: float) -> None:
    until = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= until, seconds + 2, interval=0.01, message=f"{seconds} s")
