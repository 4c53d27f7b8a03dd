"""When a failover must not or cannot happen: a cluster in maintenance records events but never
fails over; with the secondary gone too, the attempt fails cleanly and is retried (§4a rule 11)."""

import pytest

from cluster.models import Cluster
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


def test_a_cluster_in_maintenance_records_events_but_never_fails_over(make_cluster):
    under_test = make_cluster("maintenance")
    Cluster.objects.filter(pk=under_test.cluster.pk).update(maintenance=True)

    under_test.primary_agent.kill()
    failed = under_test.wait_event("server_failed", 20)
    more_slots = under_test.cluster.heartbeat_interval * 4
    wait_until(lambda: under_test.refresh().primary.state == "down", more_slots + 5, message="the primary down")

    cluster = under_test.refresh()
    assert failed.server.name == under_test.primary_agent.name
    assert cluster.epoch == 1 and cluster.failover_request is None
    assert "failover_completed" not in under_test.events()


def test_a_failover_without_a_reachable_secondary_fails_cleanly_and_is_retried(make_cluster):
    under_test = make_cluster("no-secondary", notify=True)
    under_test.secondary_agent.kill()
    wait_until(lambda: under_test.refresh().secondary.state == "down", 20, interval=0.1, message="secondary down")

    under_test.primary_agent.kill()
    wait_until(lambda: under_test.events().count("failover_failed") >= 2, 40, interval=0.2, message="two attempts")

    cluster = under_test.refresh()
    assert cluster.epoch == 1 and cluster.state != "failing_over"
    assert cluster.grant_fence_epoch == 1  # the fence dropped back after each attempt
    assert cluster.failover_request is not None  # the cause stands: it will be tried again

    under_test.secondary_agent.start()
    under_test.secondary_agent.wait_ready()
    done = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 60, "the retried failover")
    assert done.primary.name == under_test.secondary_agent.name
    under_test.assert_never_two_primaries()
    under_test.assert_notified(exactly_once=True)
