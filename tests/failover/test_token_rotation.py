"""An agent token rotated without a failover and without a moment of outage (issue 13): the agent
accepts the old and the new token meanwhile (`--next-token`), the control plane is given the new
one, sends the peer the new token's peer credential, and only then does the agent drop the old one.
Before: the peer kept heartbeating with the old token's credential until some other role command
came, so once the agent dropped the old token the peer's grants were refused (401)."""

import json
import time

import pytest
from rest_framework.test import APIClient

from agent.credentials import peer_credential
from tests.factories import UserFactory
from tests.support.agents import wait_until

pytestmark = pytest.mark.integration

NEW_TOKEN = "rotated-token-0123456789abcdef0123456789abcdef"


@pytest.fixture
def admin_client(transactional_db):
    client = APIClient()
    client.force_authenticate(UserFactory(role="admin", is_staff=True))
    return client


def _peer_token_held(agent) -> str | None:
    try:
        return json.loads((agent.state_dir / "state.json").read_text())["settings"]["peer_token"]
    except (OSError, ValueError, KeyError):
        return None


def test_an_agent_token_is_rotated_with_no_failover_and_the_peer_follows(make_cluster, admin_client):
    under_test = make_cluster("token-rotation")
    primary, secondary = under_test.primary_agent, under_test.secondary_agent
    cluster = under_test.refresh()

    # 1. The appliance accepts both tokens.
    primary.extra_args = ["--next-token", NEW_TOKEN]
    primary.restart()
    primary.wait_primary_status(200, timeout=15)
    # 2. The control plane moves to the new token (URLs unchanged: the token alone).
    response = admin_client.patch(f"/api/v1/servers/{cluster.primary_id}/", {"agent_token": NEW_TOKEN}, format="json")
    assert response.status_code == 200, response.content
    wait_until(
        lambda: _peer_token_held(secondary) == peer_credential(NEW_TOKEN),
        20,
        interval=0.2,
        message="the secondary to hold the new token's peer credential",
    )
    # 3. The appliance drops the old token.
    log_mark = len(secondary.log_text())
    primary.token, primary.extra_args = NEW_TOKEN, []
    primary.restart()
    primary.wait_primary_status(200, timeout=15)

    # The secondary's grants are accepted again: it hears the primary (no link incident), and the
    # cluster never failed over.
    wait_until(lambda: secondary.heartbeat(0, 0)["peer"]["ok"] is True, 15, interval=0.2, message="peer ok")
    end = time.monotonic() + 3 * under_test.refresh().heartbeat_interval  # three peer heartbeats
    wait_until(lambda: time.monotonic() >= end, 15, message="three heartbeat slots")
    assert "refused our token" not in secondary.log_text()[log_mark:]
    assert under_test.refresh().epoch == 1 and "failover_completed" not in under_test.events()
    under_test.assert_never_two_primaries()
