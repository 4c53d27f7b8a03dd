"""SIGSTOP of the primary: a short pause is a blip (no failover); a long one fails over, and the
old primary, once resumed, neither serves nor stays primary (DESIGN §4.3, §5 Recovery)."""

import time

import pytest

from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


def test_a_pause_shorter_than_the_threshold_span_is_not_a_failover(make_cluster):
    under_test = make_cluster("blip", notify=True)
    span = (under_test.cluster.missed_heartbeats_threshold - 1) * under_test.cluster.heartbeat_interval

    under_test.primary_agent.stop()
    pause_end = time.monotonic() + span * 0.6
    wait_until(lambda: time.monotonic() >= pause_end, span + 1, message="the pause to last")
    under_test.primary_agent.cont()
    # Three more slots: enough for a wrongly counted miss to have started a failover.
    settle = time.monotonic() + 3 * under_test.cluster.heartbeat_interval
    wait_until(lambda: time.monotonic() >= settle, 10, message="three more slots")

    cluster = under_test.refresh()
    assert cluster.epoch == 1 and cluster.primary.name == under_test.primary_agent.name
    assert "failover_completed" not in under_test.events()
    under_test.primary_agent.wait_primary_status(200, timeout=5)
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)


def test_a_long_pause_fails_over_and_the_resumed_primary_is_demoted(make_cluster):
    under_test = make_cluster("long-pause", notify=True)
    old = under_test.primary_agent

    old.stop()
    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    old.cont()

    wait_until(
        lambda: (s := old.heartbeat(epoch=2, lease_s=0))["role"] == "secondary" and s["epoch"] == 2,
        20,
        interval=0.2,
        message="the old primary to be configured as secondary at epoch 2",
    )
    assert old.primary_status() == 503
    assert under_test.events("failover_completed") == ["failover_completed"]
    assert cluster.secondary.name == old.name
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)
