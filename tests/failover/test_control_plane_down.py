"""With the control plane stopped (web, workers, beat) for 5 leases (20 s at the defaults), the secondary's grants keep
the primary serving: no outage, and no failover (DESIGN §4.4)."""

import signal

import pytest

from tests.support.agents import wait_until
from tests.support.serving import clock

pytestmark = pytest.mark.integration


def test_the_primary_keeps_serving_while_the_control_plane_is_stopped(make_cluster, control_plane):
    under_test = make_cluster("cp-down", notify=True)
    lease = under_test.cluster.effective_lease_s
    leases = 5  # many leases' worth: only the secondary's grants can keep the primary serving
    url = under_test.primary_agent.heartbeat_url
    # A send frozen for 5 leases would outlive its claim and go out twice (at least once, the
    # crash case): let the cluster's first notifications leave before freezing their worker.
    under_test.notifications.wait_idle()

    for process in control_plane.values():
        process.signal(signal.SIGSTOP)
    try:
        start = clock()
        wait_until(lambda: clock() - start >= leases * lease, leases * lease + 10, message=f"{leases} leases")
        end = clock()
    finally:
        for process in control_plane.values():
            process.signal(signal.SIGCONT)

    during = [a for a in under_test.poller.answers(url) if a.sent >= start and a.received <= end]
    assert len(during) >= leases * lease * 5  # polled every 100 ms, answers all in
    assert {a.status for a in during} == {200}, "the primary stopped serving while the control plane was down"
    cluster = under_test.refresh()
    assert cluster.epoch == 1 and "failover_completed" not in under_test.events()
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)  # stopped and continued, not crashed
