"""SIGKILL of the primary agent: the secondary takes over, the epoch moves by exactly one, and
no two agents ever serve at once (serving logs and the black-box poll agree)."""

import pytest

from alerts.models import Event

pytestmark = pytest.mark.integration


def test_it_fails_over_when_the_primary_is_killed(make_cluster):
    under_test = make_cluster("kill")
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
