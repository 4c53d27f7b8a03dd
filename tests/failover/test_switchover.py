"""Planned switchover through the API: the roles swap with no moment of two serving and no gap
longer than one lease; refused with reasons when the secondary is down."""

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def operator_client(transactional_db):
    client = APIClient()
    client.force_authenticate(UserFactory(username="oscar-operator", role="operator"))
    return client


def test_a_switchover_swaps_the_roles_without_two_primaries(make_cluster, operator_client):
    under_test = make_cluster("switch", notify=True)
    wait_until(lambda: under_test.refresh().secondary.state == "up", 15, interval=0.1, message="the secondary up")

    response = operator_client.post(f"/api/v1/clusters/{under_test.cluster.pk}/switchover/")

    assert response.status_code == 202, response.content
    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the switchover")
    assert cluster.primary.name == under_test.secondary_agent.name and cluster.state == "healthy"
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    under_test.primary_agent.wait_primary_status(503, timeout=5)
    assert under_test.events("switchover_completed") == ["switchover_completed"]
    completed = under_test.wait_event("switchover_completed", 1)
    assert completed.details["requested_by"] == "oscar-operator"  # the event names who asked
    under_test.assert_never_two_primaries()
    gap = _longest_gap(under_test)
    assert gap <= cluster.effective_lease_s, f"no primary served for {gap:.2f} s"
    under_test.assert_notified(exactly_once=True)


def test_a_switchover_is_refused_when_the_secondary_is_down(make_cluster, operator_client):
    under_test = make_cluster("switch-refused")
    under_test.secondary_agent.kill()
    wait_until(lambda: under_test.refresh().secondary.state == "down", 20, interval=0.1, message="the secondary down")

    response = operator_client.post(f"/api/v1/clusters/{under_test.cluster.pk}/switchover/")

    assert response.status_code == 409
    assert any("secondary" in reason and "down" in reason for reason in response.json()["reasons"])
    assert under_test.refresh().epoch == 1


def _longest_gap(under_test) -> float:
    """The longest stretch in which neither agent was seen serving (black-box answers)."""
    served = sorted(
        answer.received
        for agent in under_test.agents.values()
        for answer in under_test.poller.answers(agent.heartbeat_url)
        if answer.status == 200
    )
    return max((b - a for a, b in zip(served, served[1:], strict=False)), default=0.0)
