"""The fault matrix, network part (DESIGN §4 invariants 1, 3 and 4): one-way loss in each direction
on each network, and the secondary's link to the primary cut alone. A single network's fault never
fails over — the other network still answers — and never lets two agents serve."""

import time

import pytest

from tests.support.agents import wait_until
from tests.support.serving import clock

pytestmark = pytest.mark.integration

# (network whose control-plane traffic is hit, what is lost)
ONE_WAY = [
    ("heartbeat", "black_hole"),  # the control plane's requests are lost
    ("heartbeat", "drop_answer"),  # the primary's answers are lost
    ("intranet", "black_hole"),
    ("intranet", "drop_answer"),
]


def _hold(seconds: float) -> None:
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 5, message=f"{seconds} s")


def _assert_no_failover_and_served(under_test, since: float) -> None:
    cluster = under_test.refresh()
    assert cluster.epoch == 1 and "failover_completed" not in under_test.events()
    url = under_test.primary_agent.heartbeat_url
    statuses = {a.status for a in under_test.poller.answers(url) if a.sent >= since}
    assert statuses == {200}, f"the primary stopped serving: {statuses}"
    under_test.assert_never_two_primaries()


@pytest.mark.parametrize("network, loss", ONE_WAY, ids=[f"{n}-{m}" for n, m in ONE_WAY])
def test_one_way_loss_on_one_network_is_neither_a_failover_nor_an_outage(make_cluster, network, loss):
    under_test = make_cluster(f"oneway-{network}-{loss.replace('_', '-')}", proxied=True, notify=True)
    proxy = under_test.proxies[under_test.primary_agent.name][network]
    start = clock()

    proxy.set("control", loss)
    _hold(6 * under_test.cluster.heartbeat_interval)  # twice the failover threshold
    proxy.set("control", "pass")
    _hold(2 * under_test.cluster.heartbeat_interval)

    _assert_no_failover_and_served(under_test, start)
    if network == "heartbeat":
        down = under_test.wait_event("heartbeat_link_down", 5)
        restored = under_test.wait_event("heartbeat_link_restored", 15)
        assert restored.recovers_id == down.pk
    under_test.assert_notified(exactly_once=True)


def test_the_secondarys_link_to_the_primary_cut_alone_is_a_link_event(make_cluster):
    under_test = make_cluster("peer-cut", proxied=True, notify=True)
    proxy = under_test.proxies[under_test.primary_agent.name]["heartbeat"]
    start = clock()

    proxy.set("peer", "black_hole")
    down = under_test.wait_event("heartbeat_link_down", 20)
    proxy.set("peer", "pass")
    restored = under_test.wait_event("heartbeat_link_restored", 20)

    assert down.details["secondary_sees_primary"] is False
    assert restored.recovers_id == down.pk
    _assert_no_failover_and_served(under_test, start)
    under_test.assert_notified(exactly_once=True)


def test_a_link_event_is_recovered_after_a_failover_moved_the_primary(make_cluster):
    """Found by the fault campaign (CI, seed 1826980234): the primary's link went down (the
    secondary no longer heard it), then the primary died and was failed over. The event, kept among
    the old primary's incidents, was looked for among the new primary's only: never recovered."""
    under_test = make_cluster("link-then-failover", proxied=True)
    old_primary = under_test.primary_agent
    proxy = under_test.proxies[old_primary.name]["heartbeat"]

    proxy.set("peer", "black_hole")
    down = under_test.wait_event("heartbeat_link_down", 20)
    old_primary.kill()
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    old_primary.start()  # back, as the secondary
    old_primary.wait_ready()
    proxy.set("peer", "pass")

    restored = under_test.wait_event("heartbeat_link_restored", 30)
    assert restored.recovers_id == down.pk
    under_test.assert_never_two_primaries()
