"""What load balancers and the appliance's application ask, without a token: `/v1/primary`,
`/v1/replica` and `/v1/health`, by GET or HEAD; every 503 says why."""

from __future__ import annotations

import pytest

from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.integration

SETTINGS = {"interval_s": 0.2, "lease_s": 0.6, "max_grant_delay": 0.25, "max_clock_skew": 0.1}


def ask(agent: AgentProcess, path: str, url: str | None = None) -> tuple[int, dict]:
    return agent.request("GET", path, auth=False, url=url)


def test_primary_answers_head_like_get_and_503s_say_why(agent_factory) -> None:
    agent = agent_factory("a")
    status, body = ask(agent, "/v1/primary")
    assert status == 503 and body == {
        "primary": False,
        "serving": False,
        "reason": "role is unconfigured, not primary",
        "name": "a",
    }
    assert agent.request("HEAD", "/v1/primary", auth=False) == (503, b"")
    agent.role("primary", 1, 1)
    assert ask(agent, "/v1/primary")[1]["reason"] == "no lease granted at epoch 1 yet"
    agent.heartbeat(1, 0.5)
    assert ask(agent, "/v1/primary") == (200, {"primary": True, "serving": True, "name": "a"})
    assert agent.request("HEAD", "/v1/primary", auth=False) == (200, b"")
    wait_until(lambda: ask(agent, "/v1/primary")[0] == 503, 3, message="the lease to run out")
    assert ask(agent, "/v1/primary")[1]["reason"].startswith("lease ran out")


def test_a_failing_critical_service_is_the_reason(agent_factory, tmp_path) -> None:
    flag = tmp_path / "ok"
    agent = agent_factory("a", checks=[{"name": "db", "command": f"test -e {flag}", "interval": 0.1}])
    agent.role("primary", 1, 1, lease_s=30)
    agent.heartbeat(1, 30)
    status, body = ask(agent, "/v1/primary")
    assert status == 503 and body["reason"] == "critical service failing: db"
    flag.touch()
    agent.wait_primary_status(200)


def test_replica_is_200_only_on_a_secondary_that_hears_its_peer(agent_factory, tmp_path) -> None:
    flag = tmp_path / "ok"
    flag.touch()
    primary = agent_factory("p")
    secondary = agent_factory("s", checks=[{"name": "db", "command": f"test -e {flag}", "interval": 0.1}])
    primary.role("primary", 1, 1, **SETTINGS)
    secondary.role("secondary", 1, 2, peer_url=primary.heartbeat_url, peer_token=primary.peer_credential, **SETTINGS)
    wait_until(lambda: ask(secondary, "/v1/replica")[0] == 200, 3, message="a healthy replica")
    assert ask(secondary, "/v1/replica")[1] == {"replica": True, "serving": True, "name": "s"}
    assert secondary.request("HEAD", "/v1/replica", auth=False) == (200, b"")
    status, body = ask(primary, "/v1/replica")
    assert status == 503 and body["reason"] == "role is primary, not secondary"
    assert primary.request("HEAD", "/v1/replica", auth=False) == (503, b"")

    flag.unlink()
    wait_until(lambda: ask(secondary, "/v1/replica")[0] == 503, 3, message="the failing service noticed")
    assert ask(secondary, "/v1/replica")[1]["reason"] == "critical service failing: db"
    flag.touch()
    wait_until(lambda: ask(secondary, "/v1/replica")[0] == 200, 3, message="the service back")

    primary.kill()
    wait_until(lambda: ask(secondary, "/v1/replica")[0] == 503, 3, message="the silent peer noticed")
    assert ask(secondary, "/v1/replica")[1]["reason"].startswith("does not hear its peer")


def test_health_is_200_whatever_the_role(agent_factory) -> None:
    agent = agent_factory("a")
    for command in [None, ("secondary", 1, 1), ("primary", 2, 2)]:
        if command:
            assert agent.role(*command)[0] == 200
        for url in (agent.heartbeat_url, agent.intranet_url):
            status, body = ask(agent, "/v1/health", url=url)
            role, epoch = command[:2] if command else ("unconfigured", 0)
            assert status == 200 and (body["alive"], body["role"], body["epoch"]) == (True, role, epoch)
        assert agent.request("HEAD", "/v1/health", auth=False) == (200, b"")
    assert agent.primary_status() == 503  # primary without a lease: alive, yet not serving
