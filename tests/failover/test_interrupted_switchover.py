"""Scenario 3 of the safety-at-defaults issue: a switchover whose promote step cannot reach the
secondary for 20 s. The old primary has already acknowledged its demotion by then, so until the
promotion lands nobody serves; once the secondary is reachable again exactly one appliance must
serve within detection + lease + 10 s, with the database matching the agents — whether the
calls were refused (the agent down), black-holed or delayed past the control plane's timeout.
On the code before the fix, the refused case ended with the database saying "primary A, epoch 1,
healthy" while A held secondary@2 and B secondary@1: nobody served, and nothing flagged it."""

import time

import pytest
from rest_framework.test import APIClient

from cluster.models import Cluster
from dms_admin.redis import redis_client
from tests.factories import UserFactory
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration

UNREACHABLE_S = {"refused": 20.0, "black_hole": 10.0, "delay": 10.0}  # the 20 s for the case it saw


@pytest.fixture
def operator_client(transactional_db):
    client = APIClient()
    client.force_authenticate(UserFactory(role="operator"))
    return client


def _paused_before(cluster_id: int, step: str) -> None:
    def marker():
        value = redis_client().get(f"dms:paused:{cluster_id}")
        return value is not None and value.decode().startswith(step + ":")

    wait_until(marker, 40, interval=0.05, message=f"the failover paused before {step}")


@pytest.mark.parametrize("fault", ["refused", "black_hole", "delay"])
def test_a_switchover_interrupted_at_the_promotion_converges_on_one_primary(make_cluster, operator_client, fault):
    under_test = make_cluster(f"switch-{fault.replace('_', '-')}", proxied=fault != "refused")
    cluster = under_test.cluster
    secondary = under_test.secondary_agent
    wait_until(lambda: under_test.refresh().secondary.state == "up", 15, interval=0.1, message="the secondary up")
    redis_client().delete(f"dms:paused:{cluster.pk}")
    Cluster.objects.filter(pk=cluster.pk).update(fault_pause="promote")

    response = operator_client.post(f"/api/v1/clusters/{cluster.pk}/switchover/")
    assert response.status_code == 202, response.content
    _paused_before(cluster.pk, "promote")
    # The old primary acknowledged its demotion during the wait: from here on only the promotion
    # brings service back.
    under_test.primary_agent.wait_primary_status(503, timeout=5)
    if fault == "refused":
        secondary.kill()
    else:
        under_test.proxies[secondary.name]["heartbeat"].set("control", fault)
    Cluster.objects.filter(pk=cluster.pk).update(fault_pause="")
    end = time.monotonic() + UNREACHABLE_S[fault]
    wait_until(lambda: time.monotonic() >= end, UNREACHABLE_S[fault] + 5, message="the fault to last")
    if fault == "refused":
        secondary.start().wait_ready()
    else:
        under_test.proxies[secondary.name]["heartbeat"].set("control", "pass")
    healed = time.monotonic()

    bound = cluster.missed_heartbeats_threshold * cluster.heartbeat_interval + cluster.effective_lease_s + 10
    serving = wait_until(
        lambda: [a for a in under_test.agents.values() if a.primary_status() == 200],
        bound,
        interval=0.1,
        message=f"an appliance serving within {bound:g} s of the fault healing",
    )
    assert len(serving) == 1
    assert time.monotonic() - healed <= bound
    cluster = under_test.wait_state(lambda c: c.state != "failing_over", 15, "the switchover to settle")
    agent_states = {name: agent.heartbeat(0, 0) for name, agent in under_test.agents.items()}
    primary_state = agent_states[cluster.primary.name]
    assert (primary_state["role"], primary_state["epoch"]) == ("primary", cluster.epoch), agent_states
    assert serving[0].name == cluster.primary.name
    assert cluster.epoch == 2, "one promotion, one epoch step"
    under_test.assert_never_two_primaries()
