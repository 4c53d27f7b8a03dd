"""Network faults on the links (DESIGN §4.4), through fault proxies on the agents' URLs: the
control plane's view and the secondary's peer heartbeats can be cut separately."""

import time

import pytest

from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


def _hold(seconds: float) -> None:
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 5, message=f"{seconds} s to pass")


def test_a_cut_heartbeat_network_is_a_link_event_not_a_failover(make_cluster):
    under_test = make_cluster("hb-cut", proxied=True, notify=True)
    hb = under_test.proxies[under_test.primary_agent.name]["heartbeat"]

    hb.set("control", "black_hole")
    hb.set("peer", "black_hole")
    down = under_test.wait_event("heartbeat_link_down", 20)
    _hold(3 * under_test.cluster.heartbeat_interval)
    under_test.primary_agent.wait_primary_status(200, timeout=1)  # kept serving on intranet grants
    hb.set("control", "pass")
    hb.set("peer", "pass")
    restored = under_test.wait_event("heartbeat_link_restored", 20)

    assert restored.recovers_id == down.pk
    cluster = under_test.refresh()
    assert cluster.epoch == 1 and "failover_completed" not in under_test.events()
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)


def test_one_way_loss_seen_by_the_control_plane_only_is_not_a_failover(make_cluster):
    """The primary's answers to the control plane are lost while its requests arrive; the
    secondary still hears the primary: the second witness says no."""
    under_test = make_cluster("oneway-cp", proxied=True, notify=True)
    proxies = under_test.proxies[under_test.primary_agent.name]

    for proxy in proxies.values():
        proxy.set("control", "drop_answer")
    abandoned = under_test.wait_event("failover_abandoned", 30)
    under_test.wait_event("heartbeat_link_down", 5)
    for proxy in proxies.values():
        proxy.set("control", "pass")

    assert "still hears the primary" in abandoned.message
    cluster = under_test.wait_state(lambda c: c.state in ("healthy", "degraded"), 10, "the failover to be released")
    assert cluster.epoch == 1 and cluster.primary.name == under_test.primary_agent.name
    under_test.primary_agent.wait_primary_status(200, timeout=10)
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)


def test_one_way_loss_with_the_peer_link_cut_fails_over_without_two_primaries(make_cluster):
    """The control plane's requests still reach the primary (grants arrive) but its answers are
    lost, and the secondary cannot reach it at all: a failover, and never two serving."""
    under_test = make_cluster("oneway-both", proxied=True, notify=True)
    proxies = under_test.proxies[under_test.primary_agent.name]

    for proxy in proxies.values():
        proxy.set("control", "drop_answer")
        proxy.set("peer", "black_hole")

    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    assert cluster.primary.name == under_test.secondary_agent.name
    assert under_test.primary_agent.primary_status() == 503
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)
