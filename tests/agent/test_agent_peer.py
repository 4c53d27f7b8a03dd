"""Secondary grants, candidacy and promotion between two real agents (DESIGN §4a.2, 8, 10)."""

from __future__ import annotations

import time

import pytest

from tests.agent.syn_drop import SynDropRelay
from tests.support.agents import AgentProcess, wait_until
from tests.support.serving import PrimaryPoller, assert_no_overlap, clock

pytestmark = pytest.mark.integration

INTERVAL = 0.2
LEASE = 0.6
SETTINGS = {"interval_s": INTERVAL, "lease_s": LEASE, "max_grant_delay": 0.25, "max_clock_skew": 0.1}
DEFAULTS = {"interval_s": 2.0, "lease_s": 4.0, "max_grant_delay": 0.25, "max_clock_skew": 0.1}  # the product's


def pair(agent_factory, **overrides: float) -> tuple[AgentProcess, AgentProcess]:
    """A primary and a secondary configured at epoch 1, as at cluster creation."""
    settings = {**SETTINGS, **overrides}
    primary = agent_factory("p")
    secondary = agent_factory("s")
    assert (
        primary.role(
            "primary", 1, 1, peer_url=secondary.heartbeat_url, peer_token=secondary.peer_credential, **settings
        )[0]
        == 200
    )
    assert (
        secondary.role(
            "secondary", 1, 2, peer_url=primary.heartbeat_url, peer_token=primary.peer_credential, **settings
        )[0]
        == 200
    )
    return primary, secondary


def peer_of(agent: AgentProcess) -> dict:
    return agent.heartbeat(0, 0)["peer"]


def test_secondary_grants_keep_the_primary_serving(agent_factory) -> None:
    # A generous grant delay: a loaded CI machine must not turn into a false outage here.
    primary, secondary = pair(agent_factory, max_grant_delay=1.0)
    primary.wait_primary_status(200, timeout=3)
    with PrimaryPoller([primary.heartbeat_url]) as poller:
        wait_until(lambda: len(poller.answers()) >= 15, 5, message="15 polls")
    assert {a.status for a in poller.answers()} == {200}  # through ~5 leases, no control plane
    peer = peer_of(secondary)
    assert peer["ok"] is True and peer["last_answer_age_s"] < 2 * INTERVAL
    assert peer["last_grant_sent_age_s"] < 2 * INTERVAL


def test_a_settings_change_reaches_both_agents_without_a_gap(agent_factory) -> None:
    primary, secondary = pair(agent_factory, max_grant_delay=1.0)
    primary.wait_primary_status(200, timeout=3)
    new = {**SETTINGS, "interval_s": 0.3, "lease_s": 0.9, "max_grant_delay": 1.0}
    with PrimaryPoller([primary.heartbeat_url]) as poller:
        wait_until(lambda: len(poller.answers()) >= 3, 3, message="polls before")
        assert primary.role("primary", 1, 3, **new)[0] == 200
        assert secondary.role("secondary", 1, 4, **new)[0] == 200
        seen = len(poller.answers())
        wait_until(lambda: len(poller.answers()) >= seen + 10, 5, message="10 polls after")
    assert {a.status for a in poller.answers()} == {200}  # the lease was neither dropped nor let lapse
    for agent in (primary, secondary):
        assert agent.heartbeat(0, 0)["settings"] == {k: new[k] for k in DEFAULTS}
    assert peer_of(secondary)["ok"] is True and peer_of(secondary)["last_grant_sent_age_s"] < 2 * 0.3


def test_secondary_stops_granting_after_a_missed_answer_and_resumes(agent_factory) -> None:
    primary, secondary = pair(agent_factory)
    primary.wait_primary_status(200, timeout=3)
    primary.stop()
    try:
        wait_until(lambda: peer_of(secondary)["ok"] is False, 3, message="peer silent")
        first = peer_of(secondary)["last_grant_sent_age_s"]
        wait_until(
            lambda: peer_of(secondary)["last_grant_sent_age_s"] > first + 3 * INTERVAL,
            3,
            message="no new grant for three slots",
        )
    finally:
        primary.cont()
    # The queued grants arrive too old; fresh ones follow once it answers again.
    wait_until(lambda: peer_of(secondary)["ok"] is True, 3, message="peer answers again")
    primary.wait_primary_status(200, timeout=3)
    wait_until(lambda: peer_of(secondary)["last_grant_sent_age_s"] < INTERVAL * 2, 3, message="granting again")
    assert "stopped granting" in secondary.log_text()


def test_a_dead_primary_gets_no_more_grants(agent_factory) -> None:
    primary, secondary = pair(agent_factory)
    primary.wait_primary_status(200, timeout=3)
    primary.kill()
    wait_until(lambda: peer_of(secondary)["ok"] is False, 3, message="peer down")
    # Later slots carry lease_s 0 (and a refused connection records none): the age only grows.
    age = peer_of(secondary)["last_grant_sent_age_s"]
    wait_until(lambda: peer_of(secondary)["last_grant_sent_age_s"] > age + 2 * INTERVAL, 3, message="age grows")


def test_candidacy_failover_never_overlaps(agent_factory) -> None:
    primary, secondary = pair(agent_factory)
    primary.wait_primary_status(200, timeout=3)
    with PrimaryPoller([primary.heartbeat_url, secondary.heartbeat_url]) as poller:
        status, answer = secondary.role(
            "candidate", 1, 3, peer_url=primary.heartbeat_url, candidacy={"id": "c-1", "deadline_s": 10}, **SETTINGS
        )
        assert status == 200 and answer["role"] == "candidate"
        assert answer["candidacy"]["id"] == "c-1"
        age = answer["last_grant_sent_age_s"]
        assert age is not None and age < 2 * INTERVAL
        # The wait of §4a.9, computed from the answer, never assumed.
        wait_s = LEASE + 0.25 + 0.1 - age
        deadline = time.monotonic() + wait_s
        primary.wait_primary_status(503, timeout=wait_s + 0.5)
        wait_until(lambda: time.monotonic() >= deadline, wait_s + 0.5, message="wait")
        status, body = secondary.role(
            "primary",
            2,
            4,
            candidacy={"id": "c-0"},
            grant={"lease_s": LEASE, "sent_at": time.time()},
            peer_url=primary.heartbeat_url,
            **SETTINGS,
        )
        assert status == 409 and body["role"] == "candidate"
        status, body = secondary.role(
            "primary",
            2,
            5,
            candidacy={"id": "c-1"},
            grant={"lease_s": 5.0, "sent_at": time.time()},
            peer_url=primary.heartbeat_url,
            **SETTINGS,
        )
        assert status == 200 and body["grant_accepted"] is True
        assert secondary.primary_status() == 200
        # Best-effort demotion of the old primary; it then grants the new one.
        assert (
            primary.role(
                "secondary", 2, 6, peer_url=secondary.heartbeat_url, peer_token=secondary.peer_credential, **SETTINGS
            )[0]
            == 200
        )
        wait_until(lambda: poller.count(secondary.heartbeat_url, 200) >= 5, 5, message="new primary served")
    poller.check_no_overlap()
    assert_no_overlap(primary.serving_intervals(), secondary.serving_intervals())
    assert peer_of(primary)["ok"] is True  # the old primary now grants the new one


def test_a_candidacy_reverts_by_itself_and_cannot_be_promoted_after(agent_factory) -> None:
    primary, secondary = pair(agent_factory)
    primary.wait_primary_status(200, timeout=3)
    secondary.role("candidate", 1, 3, candidacy={"id": "c-1", "deadline_s": 0.8}, **SETTINGS)
    primary.wait_primary_status(503, timeout=2)  # nobody grants any more
    wait_until(lambda: secondary.heartbeat(0, 0)["role"] == "secondary", 3, message="reverted to secondary")
    primary.wait_primary_status(200, timeout=3)  # granting resumed
    status, body = secondary.role(
        "primary", 2, 4, candidacy={"id": "c-1"}, grant={"lease_s": LEASE, "sent_at": time.time()}, **SETTINGS
    )
    assert status == 409 and body["role"] == "secondary"
    assert "passed its deadline" in secondary.log_text()


def test_a_candidacy_survives_a_restart_with_its_deadline(agent_factory) -> None:
    primary, secondary = pair(agent_factory)
    secondary.role("candidate", 1, 3, candidacy={"id": "c-9", "deadline_s": 30}, **SETTINGS)
    secondary.restart()
    answer = secondary.heartbeat(0, 0)
    assert answer["role"] == "candidate" and answer["candidacy"]["id"] == "c-9"
    assert 25 < answer["candidacy"]["remaining_s"] <= 30
    # Conservative after a restart: the last grant counts as sent at process start.
    assert answer["peer"]["last_grant_sent_age_s"] is not None


def test_the_first_grant_over_a_link_that_recovers_while_connecting_is_accepted(agent_factory) -> None:
    # At the default timing. The secondary's first grant waits ~1 s for its connection (the link
    # drops its SYN, then recovers; the kernel retransmits the SYN after 1 s). Stamped as it
    # leaves, it arrives fresh and the primary serves from that slot on, not from the next one.
    primary = agent_factory("p")
    secondary = agent_factory("s")
    assert primary.role("primary", 1, 1, **DEFAULTS)[0] == 200
    relay = SynDropRelay(primary.heartbeat_port)
    try:
        status, _ = secondary.role(
            "secondary", 1, 2, peer_url=relay.url, peer_token=primary.peer_credential, **DEFAULTS
        )
        assert status == 200
        configured = clock()
        wait_until(lambda: clock() >= configured + 0.3, 2, message="the link cut for 0.3 s")
        relay.open()
        primary.wait_primary_status(200, timeout=2 * DEFAULTS["interval_s"] + 1)
    finally:
        relay.close()
    [(start, _end), *_] = primary.serving_intervals()
    assert configured + 0.9 < start < configured + 1.5, "served from the first slot's grant (~1 s late), not the next"
    assert "grant refused" not in primary.log_text()
    assert peer_of(secondary)["ok"] is True
