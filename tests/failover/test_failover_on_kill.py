"""SIGKILL of the primary agent: the secondary takes over, the epoch moves by exactly one, and
no two agents ever serve at once (serving logs and the black-box poll agree)."""

import pytest

from alerts.models import Event
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


def test_it_fails_over_when_the_primary_is_killed(make_cluster):
    under_test = make_cluster("kill", notify=True)
    old_primary, old_secondary = under_test.cluster.primary, under_test.cluster.secondary

    under_test.primary_agent.kill()

    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    assert cluster.primary_id == old_secondary.pk and cluster.secondary_id == old_primary.pk
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    types = list(Event.objects.filter(cluster=cluster).values_list("type", flat=True))
    assert types.count("failover_completed") == 1
    assert "server_failed" in types
    completed = Event.objects.get(cluster=cluster, type="failover_completed")
    assert completed.details["cause"] == "missed_heartbeats" and completed.details["lease_deadline"]
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)


def test_a_returning_old_primary_with_stale_state_never_serves_and_rejoins_as_secondary(make_cluster):
    under_test = make_cluster("return", notify=True)
    old = under_test.primary_agent
    old.kill()
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")

    old.start()  # its state directory still says: primary at epoch 1
    old.wait_ready()

    wait_until(
        lambda: (s := old.heartbeat(epoch=2, lease_s=0))["role"] == "secondary" and s["epoch"] == 2,
        20,
        interval=0.2,
        message="the old primary to rejoin as secondary at epoch 2",
    )
    recovered = under_test.wait_event("server_recovered", 10)
    assert recovered.server.name == old.name
    assert recovered.recovers.type == "server_failed"
    assert under_test.wait_state(lambda c: c.state == "healthy", 15, "the cluster healthy again").epoch == 2
    assert old.primary_status() == 503
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)
