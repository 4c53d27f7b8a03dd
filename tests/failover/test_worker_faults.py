"""Failover workers that crash, race or stall (DESIGN §4a rules 6 and 12): whatever happens to
them, the failover completes once and the epoch moves by exactly one.

The per-cluster pause key (`Cluster.fault_pause`) stops the failover task before a named step;
the task says in Redis which process stopped, so the test kills or stalls exactly that one.
"""

import os
import signal

import pytest

from cluster.models import Cluster
from cluster.tasks import run_failover
from dms_admin.redis import redis_client
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


def _paused_worker(cluster_id: int, step: str) -> int:
    def marker():
        value = redis_client().get(f"dms:paused:{cluster_id}")
        return value and value.decode().startswith(step + ":") and value.decode()

    return int(wait_until(marker, 30, interval=0.05, message=f"a worker paused before {step}").rsplit(":", 1)[1])


def _set_pause(cluster_id: int, step: str) -> None:
    Cluster.objects.filter(pk=cluster_id).update(fault_pause=step)
    redis_client().delete(f"dms:paused:{cluster_id}")


def _assert_one_failover(under_test) -> None:
    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 40, "the failover")
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    assert cluster.epoch == 2 and cluster.primary.name == under_test.secondary_agent.name
    assert under_test.events("failover_completed") == ["failover_completed"]
    under_test.assert_never_two_primaries()
    # The crashes hit failover workers only; notifications go out from the `default` workers'
    # outbox, which no scenario here touches: exactly once still holds.
    under_test.assert_notified(exactly_once=True)


@pytest.mark.parametrize(
    "step", ["witness", "wait", "commit"], ids=["after-claim", "after-candidacy", "after-promotion"]
)
def test_a_worker_killed_at_a_step_is_replaced_and_the_failover_completes(make_cluster, step):
    under_test = make_cluster(f"crash-{step}", notify=True)
    _set_pause(under_test.cluster.pk, step)

    under_test.primary_agent.kill()
    pid = _paused_worker(under_test.cluster.pk, step)
    os.kill(pid, signal.SIGKILL)
    _set_pause(under_test.cluster.pk, "")

    _assert_one_failover(under_test)


def test_a_worker_killed_during_the_lease_wait_is_replaced(make_cluster):
    # A lease longer than the detection time (4–6 s at the default interval), so that there is a wait
    # to be killed in: this test is about the wait, the one place a longer lease is the point.
    under_test = make_cluster("crash-in-wait", lease_s=10.0, notify=True)
    under_test.primary_agent.kill()

    def owner_in_wait():
        value = redis_client().get(f"dms:owner:{under_test.cluster.pk}")
        return value and value.decode().startswith("wait:") and value.decode()

    pid = int(wait_until(owner_in_wait, 30, interval=0.01, message="a worker in the lease wait").rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)

    _assert_one_failover(under_test)


def test_racing_workers_promote_once(make_cluster):
    under_test = make_cluster("race", notify=True)
    under_test.primary_agent.kill()
    wait_until(lambda: under_test.refresh().failover_request is not None, 20, interval=0.05, message="the request")

    for _ in range(8):
        run_failover.delay(under_test.cluster.pk)

    _assert_one_failover(under_test)


def test_a_stalled_worker_overtaken_by_another_stops_when_released(make_cluster, control_plane):
    under_test = make_cluster("stall", notify=True)
    _set_pause(under_test.cluster.pk, "promote")
    under_test.primary_agent.kill()
    pid = _paused_worker(under_test.cluster.pk, "promote")

    os.kill(pid, signal.SIGSTOP)  # slow but living: it keeps its place past claimed_until
    try:
        _set_pause(under_test.cluster.pk, "")
        _assert_one_failover(under_test)
    finally:
        os.kill(pid, signal.SIGCONT)

    control_plane["failover"].wait_for_log("lost; another worker owns it", timeout=20)
    assert under_test.refresh().epoch == 2
    assert under_test.events("failover_completed") == ["failover_completed"]
    under_test.assert_notified(exactly_once=True)
