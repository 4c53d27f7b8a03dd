"""What the safety-at-defaults review found besides the four scenarios: the control plane must act
on what the agents hold and re-check before every side effect. Each test here failed on the code
before the fix (see the note of each)."""

import shutil
import time

import pytest

from agent.servinglog import FILE_NAME as SERVING_LOG
from cluster.models import Cluster
from dms_admin.redis import redis_client
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


def _paused_before(cluster_id: int, step: str) -> None:
    def marker():
        value = redis_client().get(f"dms:paused:{cluster_id}")
        return value is not None and value.decode().startswith(step + ":")

    wait_until(marker, 40, interval=0.05, message=f"the failover paused before {step}")


def _pause(cluster_id: int, step: str) -> None:
    redis_client().delete(f"dms:paused:{cluster_id}")
    Cluster.objects.filter(pk=cluster_id).update(fault_pause=step)


def test_a_primary_whose_state_was_wiped_is_failed_over_and_reconfigured(make_cluster):
    """Before: the wiped primary answered heartbeats as `unconfigured`, refused every grant and
    stayed so for ever; the cluster was dark and called healthy."""
    under_test = make_cluster("wiped-primary")
    primary = under_test.primary_agent
    primary.kill()
    kept_log = (primary.state_dir / SERVING_LOG).read_bytes()  # the test's record, not the agent's state
    shutil.rmtree(primary.state_dir)
    primary.state_dir.mkdir()
    (primary.state_dir / SERVING_LOG).write_bytes(kept_log)
    primary.start().wait_ready()

    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 40, "the failover")
    completed = under_test.wait_event("failover_completed", 5)
    assert completed.details["cause"] == "agents_disagree"
    assert cluster.primary.name == under_test.secondary_agent.name
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    wait_until(
        lambda: (primary.heartbeat(0, 0)["role"], primary.heartbeat(0, 0)["epoch"]) == ("secondary", 2),
        30,
        interval=0.2,
        message="the wiped appliance configured as secondary at epoch 2",
    )
    under_test.assert_never_two_primaries()


def test_maintenance_switched_on_during_a_failover_stops_it_before_any_side_effect(make_cluster):
    """Before: maintenance was read only when the request was written; a failover already under way
    promoted the secondary of a cluster in maintenance."""
    under_test = make_cluster("maintenance-mid")
    cluster_id = under_test.cluster.pk
    _pause(cluster_id, "candidacy")
    under_test.primary_agent.kill()
    _paused_before(cluster_id, "candidacy")

    Cluster.objects.filter(pk=cluster_id).update(maintenance=True)
    Cluster.objects.filter(pk=cluster_id).update(fault_pause="")

    abandoned = under_test.wait_event("failover_abandoned", 20)
    assert "maintenance" in abandoned.message
    cluster = under_test.wait_state(lambda c: c.state != "failing_over", 10, "the failover released")
    assert cluster.epoch == 1 and "failover_completed" not in under_test.events()
    status = under_test.secondary_agent.heartbeat(0, 0)
    assert (status["role"], status["epoch"]) == ("secondary", 1)


def test_a_kept_request_whose_cause_has_healed_fails_nothing_over_later(make_cluster, tmp_path):
    """A critical service fails on the primary while the secondary is down: the failover fails and
    its request is kept (retried with backoff). The service recovers, then the secondary comes back.
    Before: the kept request failed the healthy primary over anyway."""
    flag = tmp_path / "media-engine.down"
    check = {"name": "media-engine", "command": f"test ! -e {flag}", "critical": True, "interval": 0.3, "timeout": 2}
    under_test = make_cluster("kept-request", checks_primary=[check])
    under_test.secondary_agent.kill()
    flag.touch()
    under_test.wait_event("failover_failed", 40)
    flag.unlink()
    under_test.wait_event("critical_service_recovered", 20)

    under_test.secondary_agent.start().wait_ready()
    wait_until(lambda: under_test.refresh().secondary.state == "up", 30, interval=0.2, message="the secondary up")
    end = time.monotonic() + 10
    wait_until(lambda: time.monotonic() >= end, 15, message="the backoff to pass")

    cluster = under_test.wait_state(
        lambda c: c.failover_request is None and c.state != "failing_over", 30, "the request to be dropped"
    )
    assert cluster.epoch == 1 and "failover_completed" not in under_test.events()
    under_test.primary_agent.wait_primary_status(200, timeout=10)
    under_test.assert_never_two_primaries()


def test_a_reused_appliance_holding_a_later_epoch_is_adopted(agents, make_cluster):
    """An appliance taken from another cluster still holds epoch 5: the new cluster adopts it
    instead of being refused (409) for ever. Before: configuration retried every 5 s, never
    healthy."""
    under_test = make_cluster("reused", reuse_epoch=5)
    cluster = under_test.refresh()
    assert cluster.epoch == 5
    for agent in under_test.agents.values():
        assert agent.heartbeat(0, 0)["epoch"] == 5
    under_test.primary_agent.wait_primary_status(200, timeout=10)


def test_a_primary_that_answers_but_serves_nobody_is_acted_on(make_cluster):
    """The database's fence stuck above the epoch (as a clean-up that never ran would leave it) and
    the secondary's peer heartbeats cut: the primary answers every probe as primary at the epoch,
    and holds no lease. Before: the cluster stayed dark and "healthy" for ever."""
    under_test = make_cluster("dark-primary", proxied=True)
    primary = under_test.primary_agent
    under_test.proxies[primary.name]["heartbeat"].set("peer", "black_hole")
    cluster = under_test.refresh()
    Cluster.objects.filter(pk=cluster.pk).update(grant_fence_epoch=cluster.epoch + 1)
    primary.wait_primary_status(503, timeout=15)

    cluster = under_test.wait_state(lambda c: c.epoch >= 2 and c.state != "failing_over", 40, "the failover")
    completed = under_test.wait_event("failover_completed", 5)
    assert completed.details["cause"] == "not_serving"
    under_test.secondary_agent.wait_primary_status(200, timeout=10)
    under_test.assert_never_two_primaries()
