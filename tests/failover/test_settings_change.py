"""Scenario 2 of the safety-at-defaults issue: the interval changed 2 s → 1 s through the API, then
the primary's answers lost on both networks. Settings used to reach the agents only inside role
commands: five seconds after the PATCH both still held a 4 s lease, the failover waited for a 2 s
one while the old primary held 4 s from its secondary, and the two agents' serving logs
overlapped. Now the change is an ordered command to both agents, and every lease wait uses the
longest lease a granter may still grant until both have acknowledged it."""

import json
import time

import pytest
from rest_framework.test import APIClient

from cluster.choices import Role
from cluster.models import Cluster
from cluster.role_commands import RoleCommand, send_role
from dms_admin.redis import redis_client
from tests.factories import UserFactory
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration


def _held_lease(agent) -> float | None:
    try:
        return json.loads((agent.state_dir / "state.json").read_text())["settings"]["lease_s"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture
def admin_client(transactional_db):
    client = APIClient()
    client.force_authenticate(UserFactory(role="admin", is_staff=True))
    return client


def test_a_shorter_interval_reaches_both_agents_and_no_two_serve_after(make_cluster, admin_client):
    under_test = make_cluster("settings-change", proxied=True)
    cluster_id = under_test.cluster.pk

    response = admin_client.patch(f"/api/v1/clusters/{cluster_id}/", {"heartbeat_interval": 1.0}, format="json")
    assert response.status_code == 200, response.content
    cluster = under_test.refresh()
    assert cluster.effective_lease_s == 2.0 and cluster.longest_lease_s == 4.0  # the old lease still counts

    for agent in under_test.agents.values():
        wait_until(lambda a=agent: _held_lease(a) == 2.0, 10, interval=0.1, message=f"{agent.name} to hold lease 2 s")
    # Answers of the primary lost on both networks, to the control plane and to the secondary.
    for proxy in under_test.proxies[under_test.primary_agent.name].values():
        proxy.set("control", "drop_answer")
        proxy.set("peer", "drop_answer")

    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 40, "the failover")
    assert cluster.primary.name == under_test.secondary_agent.name
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    under_test.assert_never_two_primaries()
    # Both agents acknowledged the new settings before the cut: once the old lease has run out
    # since then, waits use the new lease again.
    for proxy in under_test.proxies[under_test.primary_agent.name].values():
        proxy.set("control", "pass")
        proxy.set("peer", "pass")
    wait_until(lambda: under_test.refresh().lease_bound_s is None, 30, interval=0.2, message="the lease bound cleared")


def test_while_an_agent_has_not_acknowledged_the_wait_keeps_the_old_lease(make_cluster, admin_client):
    """The secondary cannot be reached when the interval is shortened: it goes on granting the old
    4 s lease, so the bound stays, and a failover waits for the old lease."""
    under_test = make_cluster("settings-unacked", proxied=True)
    cluster_id = under_test.cluster.pk
    secondary_proxy = under_test.proxies[under_test.secondary_agent.name]["heartbeat"]
    secondary_proxy.set("control", "black_hole")

    response = admin_client.patch(f"/api/v1/clusters/{cluster_id}/", {"heartbeat_interval": 1.0}, format="json")
    assert response.status_code == 200, response.content
    wait_until(lambda: _held_lease(under_test.primary_agent) == 2.0, 10, interval=0.1, message="the primary updated")
    assert _held_lease(under_test.secondary_agent) == 4.0
    assert under_test.refresh().longest_lease_s == 4.0

    secondary_proxy.set("control", "pass")
    wait_until(lambda: _held_lease(under_test.secondary_agent) == 2.0, 20, interval=0.1, message="the secondary")
    wait_until(lambda: under_test.refresh().lease_bound_s is None, 20, interval=0.2, message="the lease bound cleared")


def test_a_longer_interval_still_counts_misses_and_fails_over(make_cluster, admin_client):
    # Found by the fault campaign (seed 369198041): slots were numbered per interval and a slot at
    # or below the last one counted was stale. After 2 s → 1 s → 2 s (or any longer interval) every
    # new slot number was lower than the last one of the shorter interval: nothing was counted
    # again, and a primary that stopped serving was never failed over (53 s dark, shown healthy).
    under_test = make_cluster("interval-up")
    cluster_id = under_test.cluster.pk
    response = admin_client.patch(f"/api/v1/clusters/{cluster_id}/", {"heartbeat_interval": 1.0}, format="json")
    assert response.status_code == 200, response.content
    changed_at = time.time()
    primary_key = f"dms:srv:{under_test.cluster.primary_id}"
    wait_until(  # slots of 1 s counted for the primary: their numbers are what went wrong
        lambda: float(redis_client().hget(primary_key, "last_answer_at") or 0) > changed_at + 1,
        15,
        interval=0.1,
        message="slots of 1 s counted",
    )
    response = admin_client.patch(f"/api/v1/clusters/{cluster_id}/", {"heartbeat_interval": 2.0}, format="json")
    assert response.status_code == 200, response.content
    for agent in under_test.agents.values():
        wait_until(lambda a=agent: _held_lease(a) == 4.0, 15, interval=0.1, message=f"{agent.name} to hold lease 4 s")

    under_test.primary_agent.kill()

    cluster = under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    assert cluster.primary.name == under_test.secondary_agent.name
    under_test.secondary_agent.wait_primary_status(200, timeout=5)
    under_test.assert_never_two_primaries()


def test_a_role_command_carries_the_timing_of_the_database_not_of_a_stale_row(make_cluster):
    # Two settings pushes racing (2 s -> 1 s -> 2 s): the task holding the older row allocated the
    # later seq, and the agents kept that seq's older settings. A command now reads its timing after
    # its seq is allocated.
    under_test = make_cluster("stale-row")
    stale = Cluster.objects.select_related("primary", "secondary").get(pk=under_test.cluster.pk)
    Cluster.objects.filter(pk=stale.pk).update(heartbeat_interval=1.0)  # saved after `stale` was read

    answer = send_role(stale, stale.secondary, RoleCommand(Role.SECONDARY, stale.epoch, peer=stale.primary))

    assert answer.ok, answer
    assert _held_lease(under_test.secondary_agent) == 2.0  # the database's 1 s interval, not the row's 2 s
