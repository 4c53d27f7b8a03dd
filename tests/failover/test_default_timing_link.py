"""Scenario 1 of the safety-at-defaults issue: the heartbeat network black-holed (packets dropped,
not refused) while the intranet works. At the product's default timing (interval 2 s, probe timeout
0.9 s, max_grant_delay 0.25 s) the intranet retry must carry a grant stamped when it leaves: a
grant stamped before the heartbeat URL's 0.9 s timeout arrives too old, is refused, and the primary
goes dark for as long as the link is cut — an outage caused by the very fault the design says costs
nothing."""

import pytest

from tests.support.agents import wait_until
from tests.support.serving import clock  # the agents' clock: serving logs and poller answers

pytestmark = pytest.mark.integration

CUT_S = 16.0  # eight slots at the default interval; the report saw the outage 3.5 s in


def _hold_until(moment: float) -> None:
    wait_until(lambda: clock() >= moment, moment - clock() + 5, message="the cut to last")


@pytest.mark.parametrize("mode", ["black_hole", "drop_answer"])
def test_a_cut_heartbeat_network_costs_no_service_at_default_timing(make_cluster, mode):
    under_test = make_cluster(f"hb-{mode.replace('_', '-')}", proxied=True)
    cluster = under_test.cluster
    assert (cluster.heartbeat_interval, cluster.effective_lease_s, cluster.max_grant_delay) == (2.0, 4.0, 0.25)
    primary = under_test.primary_agent
    heartbeat = under_test.proxies[primary.name]["heartbeat"]

    cut_at = clock()
    heartbeat.set("control", mode)
    heartbeat.set("peer", mode)
    under_test.wait_event("heartbeat_link_down", 20)
    _hold_until(cut_at + CUT_S)
    healed_at = clock()
    heartbeat.set("control", "pass")
    heartbeat.set("peer", "pass")
    under_test.wait_event("heartbeat_link_restored", 20)

    # The primary answered 200 throughout: no 503 from it while the link was cut, and its own
    # serving log covers the whole cut.
    refusals = [
        a for a in under_test.poller.answers(primary.heartbeat_url)
        if cut_at <= a.sent <= healed_at and a.status == 503
    ]  # fmt: skip
    assert not refusals, f"{len(refusals)} answers of 503 from the primary while the link was cut"
    assert any(start <= cut_at and healed_at <= end for start, end in primary.serving_intervals()), (
        "the primary's serving log has a gap during the cut"
    )
    cluster = under_test.refresh()
    assert cluster.epoch == 1 and "failover_completed" not in under_test.events()
    under_test.assert_never_two_primaries()
