"""The role-change hook (`--on-role-change CMD`) on a real agent: run with role, epoch and cluster
after every change of role or epoch, and never in the way of answers, leases or the role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.agents import wait_until
from tests.support.serving import clock

pytestmark = pytest.mark.integration


def hook_script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hook.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_hook_hears_a_promotion_and_a_demotion(agent_factory, tmp_path) -> None:
    calls = tmp_path / "calls"
    script = hook_script(tmp_path, f'echo "$@" >> {calls}\n')
    agent = agent_factory("a", extra_args=["--on-role-change", str(script)])
    expected = []
    for command, change in [
        (("secondary", 1, 1), "secondary 1 dmm-east"),
        (("candidate", 1, 2), "candidate 1 dmm-east"),
        (("primary", 2, 3), "primary 2 dmm-east"),  # promotion
        (("secondary", 3, 4), "secondary 3 dmm-east"),  # demotion
    ]:
        status, _ = agent.role(*command, cluster="dmm-east", candidacy={"id": "c1", "deadline_s": 30})
        assert status == 200
        expected.append(change)
        wait_until(lambda: lines(calls) == expected, 5, message=f"the hook to hear {change!r}")
    assert agent.role("secondary", 3, 5, interval_s=0.4)[0] == 200  # settings only: no call
    assert agent.role("primary", 4, 6)[0] == 200  # the cluster name is kept from before
    wait_until(lambda: lines(calls)[-1] == "primary 4 dmm-east", 5, message="the hook to hear the last change")
    assert len(lines(calls)) == 5
    assert "failed" not in agent.log_text() and "timed out" not in agent.log_text()


def test_a_failing_hook_is_logged_and_changes_nothing(agent_factory, tmp_path) -> None:
    script = hook_script(tmp_path, "exit 3\n")
    agent = agent_factory("a", extra_args=["--on-role-change", f"{script} --from-dms"])
    assert agent.role("primary", 1, 1)[0] == 200
    # Without a cluster name the agent's own name stands in; CMD's own arguments come first.
    wait_until(lambda: "--from-dms primary 1 a failed: exit status 3" in agent.log_text(), 5, message="the failure")
    assert agent.heartbeat(1, 2.0)["grant_accepted"] is True
    assert agent.heartbeat(0, 0)["role"] == "primary"
    assert agent.primary_status() == 200


def test_a_hanging_hook_never_blocks_and_is_killed_at_its_timeout(agent_factory, tmp_path) -> None:
    pid_file = tmp_path / "pid"
    script = hook_script(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60\n")
    agent = agent_factory("a", extra_args=["--on-role-change", str(script), "--on-role-change-timeout", "1.5"])
    asked = clock()
    assert agent.role("primary", 1, 1)[0] == 200
    assert clock() - asked < 0.5, "the role answer waited for the hook"
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 5, message="the hook"))
    # While it hangs, grants are judged and the primary serves as ever.
    assert agent.heartbeat(1, 5.0)["grant_accepted"] is True
    assert agent.primary_status() == 200 and alive(pid)
    wait_until(lambda: "timed out after 1.5s: killed" in agent.log_text(), 5, message="the timeout")
    assert not alive(pid)
    assert agent.heartbeat(0, 0)["role"] == "primary"


def test_a_newer_change_kills_a_hook_still_running(agent_factory, tmp_path) -> None:
    script = hook_script(tmp_path, f"echo $$ > {tmp_path}/pid.$1\nexec sleep 60\n")
    agent = agent_factory("a", extra_args=["--on-role-change", str(script)])

    def pid_of(role: str) -> int:
        path = tmp_path / f"pid.{role}"
        return int(wait_until(lambda: path.exists() and path.read_text().strip(), 5, message=f"the {role} hook"))

    agent.role("secondary", 1, 1)
    first = pid_of("secondary")
    agent.role("candidate", 1, 2, candidacy={"id": "c1", "deadline_s": 30})
    second = pid_of("candidate")
    assert "killed: a newer role change" in agent.log_text()
    assert not alive(first) and alive(second)
    agent.terminate()  # a hook still running when the agent stops is killed too
    assert not alive(second)
