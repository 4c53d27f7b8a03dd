"""Grants and leases on a real agent (DESIGN §4a.1): who may extend the lease, and when it ends."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.agents import wait_until
from tests.support.serving import clock

pytestmark = pytest.mark.integration


def test_a_grant_makes_the_primary_serve_until_the_lease_ends(agent_factory) -> None:
    agent = agent_factory("p")
    agent.role("primary", 1, 1)
    assert agent.primary_status() == 503  # primary without a lease does not serve
    before = clock()
    answer = agent.heartbeat(1, 1.0)
    assert answer["grant_accepted"] is True and answer["grant_refused_reason"] is None
    assert before + 1.0 <= answer["lease_until"] <= clock() + 1.0  # lease_until is on the agent's clock
    assert agent.primary_status() == 200
    assert agent.primary_status(agent.intranet_url) == 200
    wait_until(lambda: clock() >= answer["lease_until"], 3, message="lease end")
    assert agent.primary_status() == 503
    [(start, end)] = agent.serving_intervals()
    assert before <= start and end == pytest.approx(answer["lease_until"])


def test_grants_of_another_epoch_are_refused(agent_factory) -> None:
    agent = agent_factory("p")
    agent.role("primary", 2, 5)
    for epoch in (1, 3):
        answer = agent.heartbeat(epoch, 1.0)
        assert answer["grant_accepted"] is False and "epoch" in answer["grant_refused_reason"]
    assert agent.primary_status() == 503
    assert agent.heartbeat(2, 1.0)["grant_accepted"] is True  # seq plays no part


@pytest.mark.parametrize(
    "offset,accepted,reason",
    [
        (0.5, False, "max_grant_delay"),  # agent's clock ahead: the grant looks 0.5 s old
        (-1.0, False, "max_clock_skew"),  # agent's clock behind: the grant comes from the future
        (0.05, True, None),  # margins leave room for a loaded test machine's latency
        (-0.08, True, None),
    ],
)
def test_grants_are_judged_by_sent_at_on_the_agents_clock(agent_factory, offset: float, accepted: bool, reason) -> None:
    agent = agent_factory("p", clock_offset=offset)
    agent.role("primary", 1, 1)
    answer = agent.heartbeat(1, 1.0)
    assert abs(answer["now"] - time.time() - offset) < 0.1
    assert answer["grant_accepted"] is accepted
    if reason:
        assert reason in answer["grant_refused_reason"]
        assert agent.primary_status() == 503


def test_demotion_stops_serving_at_once_and_is_logged(agent_factory) -> None:
    agent = agent_factory("p")
    agent.role("primary", 1, 1)
    agent.heartbeat(1, 30.0)
    assert agent.primary_status() == 200
    status, answer = agent.role("secondary", 2, 2)
    acked = clock()
    assert status == 200 and answer["role"] == "secondary" and answer["lease_remaining_s"] == 0
    assert agent.primary_status() == 503
    [(start, end)] = agent.serving_intervals()
    assert end <= acked
    assert "stopped serving" in agent.log_text()


def test_a_killed_primary_serves_nothing_after_restart(agent_factory) -> None:
    agent = agent_factory("p")
    agent.role("primary", 1, 1)
    agent.heartbeat(1, 30.0)
    agent.kill()
    agent.start().wait_ready()
    restarted = clock()
    assert agent.primary_status() == 503
    [(start, end)] = agent.serving_intervals()
    assert end <= restarted


def test_a_paused_primary_does_not_serve_on_stale_grants(agent_factory) -> None:
    agent = agent_factory("p")
    agent.role("primary", 1, 1)
    agent.heartbeat(1, 0.5)
    agent.stop()
    try:
        # A grant sent while it is frozen waits in the socket and arrives too old.
        import threading

        result = {}
        thread = threading.Thread(target=lambda: result.update(agent.heartbeat(1, 5.0)))
        thread.start()
        time.sleep(0.6)  # the pause itself is the fault being injected
    finally:
        agent.cont()
    thread.join(5)
    assert result["grant_accepted"] is False
    assert "max_grant_delay" in result["grant_refused_reason"]
    assert agent.primary_status() == 503


def _time_namespace_prefix(boottime_offset: int) -> list[str]:
    """`unshare` arguments that run a command with CLOCK_BOOTTIME shifted (a host that was suspended
    that long), or skip the test where time namespaces are not allowed."""
    for prefix in (["unshare", "--time"], ["unshare", "--user", "--map-root-user", "--time"]):
        cmd = [*prefix, "--boottime", str(boottime_offset)]
        try:
            if subprocess.run([*cmd, "true"], capture_output=True, timeout=10).returncode == 0:
                return cmd
        except (OSError, subprocess.TimeoutExpired):
            break
    pytest.skip("time namespaces (unshare --time) are not available here")


def test_leases_run_on_the_clock_that_counts_suspended_time(agent_factory) -> None:
    # In a time namespace whose CLOCK_BOOTTIME is 100,000 s ahead of its CLOCK_MONOTONIC — as on
    # a host that spent that long suspended — the lease must be on the boot-time clock: a lease on
    # CLOCK_MONOTONIC would not have counted a suspend and would outlive its grant after a resume.
    offset = 100_000
    agent = agent_factory("p", prefix=_time_namespace_prefix(offset))
    agent.role("primary", 1, 1)
    before = clock() + offset
    answer = agent.heartbeat(1, 1.0)
    assert before + 1.0 <= answer["lease_until"] <= clock() + offset + 1.0
    [(start, end)] = agent.serving_intervals()
    assert before <= start and end == pytest.approx(answer["lease_until"])
