"""The agent's HTTP contract (DESIGN §8) against a real `python -m agent` process."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.support.agents import REPO_ROOT, wait_until

pytestmark = pytest.mark.integration


def test_it_starts_unconfigured_and_does_not_serve(agent_factory) -> None:
    agent = agent_factory("a1")
    assert agent.primary_status() == 503
    assert agent.primary_status(agent.intranet_url) == 503
    answer = agent.heartbeat(1, 2.0)
    assert answer["role"] == "unconfigured" and answer["grant_accepted"] is False
    assert agent.primary_status() == 503


def test_it_refuses_calls_without_the_token(agent_factory) -> None:
    agent = agent_factory("a1")
    for method, path in [
        ("POST", "/v1/heartbeat"),
        ("POST", "/v1/role"),
        ("GET", "/v1/inventory"),
        ("GET", "/v1/data/manifest"),
        ("GET", "/v1/data/files/x"),
    ]:
        status, body = agent.request(method, path, {"epoch": 1}, auth=False)
        assert status == 401 and "error" in body, (method, path)
        status, body = agent.request(method, path, {"epoch": 1}, token="wrong")
        assert status == 401, (method, path)
    assert "test-agent-token" not in agent.log_text()


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"epoch": "one", "lease_s": 1, "sent_at": 1}', "epoch"),
        (b'{"epoch": 1, "lease_s": -1, "sent_at": 1}', "lease_s"),
        (b'{"epoch": 1, "lease_s": 1}', "sent_at"),
        (b"", "JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_it_answers_400_to_bad_heartbeats(agent_factory, raw: bytes, message: str) -> None:
    agent = agent_factory("a1")
    status, body = agent.request("POST", "/v1/heartbeat", raw=raw)
    assert status == 400 and message in body["error"]


def test_it_answers_400_to_bad_role_commands_and_json_404s(agent_factory) -> None:
    agent = agent_factory("a1")
    status, body = agent.request("POST", "/v1/role", {"role": "primary", "epoch": 1})
    assert status == 400 and "seq" in body["error"]
    status, body = agent.request("POST", "/v1/role", raw=b"nope")
    assert status == 400
    status, body = agent.request("GET", "/v1/nothing")
    assert status == 404 and "error" in body
    assert "Traceback" not in agent.log_text()


def test_it_refuses_stale_commands_with_what_it_holds(agent_factory) -> None:
    agent = agent_factory("a1")
    assert agent.role("secondary", 2, 10)[0] == 200
    for epoch, seq in [(2, 10), (2, 9), (1, 99)]:
        status, body = agent.role("primary", epoch, seq)
        assert status == 409
        assert {k: body[k] for k in ("role", "epoch", "seq", "candidacy")} == {
            "role": "secondary",
            "epoch": 2,
            "seq": 10,
            "candidacy": None,
        }
        assert "last_grant_sent_age_s" in body and body["error"]


def test_role_epoch_and_seq_survive_a_restart(agent_factory) -> None:
    agent = agent_factory("a1")
    assert agent.role("primary", 3, 7)[0] == 200
    agent.restart()
    answer = agent.heartbeat(3, 0)
    assert (answer["role"], answer["epoch"], answer["seq"]) == ("primary", 3, 7)
    assert agent.primary_status() == 503  # a restarted primary holds no lease
    assert agent.role("secondary", 3, 7)[0] == 409
    state = json.loads((agent.state_dir / "state.json").read_text())
    assert (state["role"], state["epoch"], state["seq"]) == ("primary", 3, 7)


def test_inventory_is_seeded_then_installed_in_order(agent_factory) -> None:
    seed = {
        "system": {"part_number": "DMM-FA-C210-K9", "hardware": {"cpu_count": 2}, "configuration": {"ntp": "a"}},
        "licenses": [],
        "modules": [],
    }
    agent = agent_factory("a1", inventory=seed)
    status, inv = agent.request("GET", "/v1/inventory")
    assert status == 200 and inv["system"]["part_number"] == "DMM-FA-C210-K9"
    agent.role("secondary", 1, 1)
    update = {
        "epoch": 1,
        "seq": 2,
        "licenses": [{"key": "L1"}],
        "modules": ["m1"],
        "system": {"part_number": "EVIL", "configuration": {"ntp": "b"}},
    }
    status, inv = agent.request("PUT", "/v1/inventory", update)
    assert status == 200
    assert inv["licenses"] == [{"key": "L1"}] and inv["modules"] == ["m1"]
    assert inv["system"] == {
        "part_number": "DMM-FA-C210-K9",
        "hardware": {"cpu_count": 2},
        "configuration": {"ntp": "b"},
    }
    status, body = agent.request("PUT", "/v1/inventory", update)
    assert status == 409 and body["seq"] == 2
    status, body = agent.request("PUT", "/v1/inventory", {"epoch": 1, "seq": 3, "licenses": 5})
    assert status == 400
    agent.restart()
    assert agent.request("GET", "/v1/inventory")[1]["licenses"] == [{"key": "L1"}]


def test_checks_decide_serving_and_are_reported(agent_factory, tmp_path) -> None:
    flag = tmp_path / "db-ok"
    flag.touch()
    agent = agent_factory(
        "a1",
        checks=[
            {"name": "db", "command": f"test -e {flag}", "critical": True, "interval": 0.1},
            {"name": "disk", "command": "exit 3", "critical": False, "interval": 0.1},
            {"name": "slow", "command": "sleep 5", "critical": False, "interval": 0.1, "timeout": 0.2},
        ],
    )
    agent.role("primary", 1, 1, lease_s=30)
    agent.heartbeat(1, 30)
    agent.wait_primary_status(200)
    flag.unlink()
    agent.wait_primary_status(503)
    answer = wait_until(
        lambda: (a := agent.heartbeat(1, 0))["services"][0]["consecutive_failures"] >= 2 and a,
        5,
        message="two failures",
    )
    assert answer["services"][0]["name"] == "db" and answer["services"][0]["ok"] is False
    assert answer["components"] == [{"name": "disk", "ok": False}, {"name": "slow", "ok": False}]
    flag.touch()
    agent.wait_primary_status(200)  # the lease still holds; the check recovered


def test_help_documents_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    for option in [
        "--name",
        "--heartbeat-listen",
        "--intranet-listen",
        "--data-dir",
        "--state-dir",
        "--token",
        "--tls-cert",
        "--tls-key",
        "--check",
        "--clock-offset",
        "--inventory",
        "--max-body-mb",
        "--config",
        "--on-role-change",
        "--on-role-change-timeout",
    ]:
        assert option in out


def test_it_starts_from_a_config_file_that_flags_override(tmp_path) -> None:
    from tests.support.agents import AgentProcess, free_port

    port = free_port()
    config = {
        "name": "from-file",
        "heartbeat_listen": f"127.0.0.1:{free_port()}",
        "data_dir": str(tmp_path / "d"),
        "state_dir": str(tmp_path / "s"),
        "token": "file-token",
        "checks": [{"name": "ok", "command": "true"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    agent = AgentProcess(tmp_path, "x", token="file-token")
    agent.heartbeat_port = port
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "--config",
            str(tmp_path / "c.json"),
            "--heartbeat-listen",
            f"127.0.0.1:{port}",
        ],
        cwd=REPO_ROOT,
        stderr=subprocess.DEVNULL,
    )
    agent.proc = proc
    try:
        agent.wait_ready(10)
        answer = agent.heartbeat(0, 0)
        assert answer["name"] == "from-file"
        assert answer["services"][0]["name"] == "ok"
    finally:
        proc.kill()
        proc.wait()


def test_a_missing_required_option_is_one_clear_line(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "--name", "x"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "--heartbeat-listen" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--on-role-change", "/bin/hook 'unbalanced"], "--on-role-change"),
        (["--on-role-change", "  "], "needs a command"),
        (["--on-role-change", "true", "--on-role-change-timeout", "0"], "must be > 0"),
    ],
)
def test_a_bad_hook_option_is_one_clear_line(tmp_path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "--heartbeat-listen", "127.0.0.1:1", "--data-dir", str(tmp_path)]
        + ["--state-dir", str(tmp_path), "--token", "t", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_it_logs_role_changes_and_refusals_without_the_token(agent_factory) -> None:
    agent = agent_factory("a1", token="s3cret-token-value")
    agent.role("primary", 1, 1, peer_token="peer-s3cret")
    agent.heartbeat(2, 1.0)
    deadline = time.monotonic() + 5
    while "grant refused" not in agent.log_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    text = agent.log_text()
    assert "unconfigured@0 -> primary@1" in text and "grant refused" in text
    assert "s3cret" not in text


def test_heartbeat_and_role_answers_have_the_documented_shape(agent_factory) -> None:
    agent = agent_factory("a1", checks=[{"name": "ok", "command": "true"}])
    status, role_answer = agent.role("candidate", 1, 1, candidacy={"id": "c", "deadline_s": 9})
    assert status == 200
    assert {"role", "epoch", "seq", "candidacy", "last_grant_sent_age_s"} <= set(role_answer)
    assert set(role_answer["candidacy"]) == {"id", "deadline_s", "remaining_s"}
    answer = agent.heartbeat(1, 0)
    assert set(answer) == {
        "name",
        "role",
        "epoch",
        "seq",
        "candidacy",
        "now",
        "lease_until",
        "lease_remaining_s",
        "uptime_s",
        "settings",
        "services",
        "components",
        "peer",
        "grant_accepted",
        "grant_refused_reason",
    }
    assert set(answer["peer"]) == {"ok", "last_answer_age_s", "last_grant_sent_age_s"}
    assert answer["settings"] == {"interval_s": 0.5, "lease_s": 1.0, "max_grant_delay": 0.25, "max_clock_skew": 0.1}
    assert set(answer["services"][0]) == {"name", "critical", "ok", "consecutive_failures"}
