"""Unit tests of AgentCore (DESIGN §4a) with hand-driven clocks: no processes, no sleeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.core import AgentCore, BadRequest, Refused
from agent.health import primary_refusal, replica_refusal
from agent.servinglog import read_serving_intervals


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def make_core(
    clock: Clock,
    state: dict[str, Any] | None = None,
    saved: list[dict[str, Any]] | None = None,
    log: list[dict[str, Any]] | None = None,
    hook: Callable[[str, int, str], None] | None = None,
) -> AgentCore:
    return AgentCore(
        mono=lambda: clock.mono,
        wall=lambda: clock.wall,
        state=state,
        persist=(saved.append if saved is not None else None),
        serving_log=(log.append if log is not None else None),
        on_role_change=hook,
        name="t",
    )


def role(core: AgentCore, role: str, epoch: int, seq: int, **kw: Any) -> dict[str, Any]:
    body = {
        "role": role,
        "epoch": epoch,
        "seq": seq,
        "peer_url": "http://peer",
        "peer_token": "p",
        "interval_s": 1.0,
        "lease_s": 2.0,
        "max_grant_delay": 0.25,
        "max_clock_skew": 0.1,
        **kw,
    }
    return core.apply_role(body)


def grant(core: AgentCore, clock: Clock, epoch: int = 1, lease_s: float = 2.0, delay: float = 0.0) -> dict[str, Any]:
    return core.heartbeat({"epoch": epoch, "lease_s": lease_s, "sent_at": clock.wall - delay}, clock.mono, clock.wall)


def send_grant(core: AgentCore) -> dict[str, Any]:
    """One slot's heartbeat to the peer, connected at once: the body as it leaves."""
    peer_url = core.begin_grant()
    assert peer_url is not None
    return core.grant_leaving(peer_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_it_starts_unconfigured_and_never_serves(clock: Clock) -> None:
    core = make_core(clock)
    assert core.role == "unconfigured"
    assert grant(core, clock)["grant_accepted"] is False
    assert not core.holds_lease()


def test_a_primary_without_a_grant_says_so(clock: Clock) -> None:
    core = make_core(clock)
    assert primary_refusal(core, [], clock.mono) == "role is unconfigured, not primary"
    role(core, "primary", 3, 1)
    assert primary_refusal(core, [], clock.mono) == "no lease granted at epoch 3 yet"
    assert primary_refusal(core, ["db", "web"], clock.mono) == "critical services failing: db, web"


def test_a_replica_is_a_secondary_with_passing_services_that_hears_its_peer(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    assert replica_refusal(core, [], clock.mono) == "role is primary, not secondary"
    role(core, "secondary", 2, 2)  # interval 1 s
    assert replica_refusal(core, [], clock.mono) == "has not heard its peer yet"
    send_grant(core)
    core.grant_answered()
    assert replica_refusal(core, [], clock.mono) is None
    assert replica_refusal(core, ["db"], clock.mono) == "critical service failing: db"
    clock.advance(2.5)  # the peer loop stalled: no answer for more than two slots
    assert replica_refusal(core, [], clock.mono) == "does not hear its peer (last answer 2.5s ago)"
    core.grant_answered()
    clock.advance(1.8)  # the next slot's heartbeat timed out
    core.grant_failed(refused=False)
    assert replica_refusal(core, [], clock.mono) == "does not hear its peer (last answer 1.8s ago)"


def test_it_serves_until_receipt_plus_lease(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    answer = grant(core, clock, lease_s=2.0)
    assert answer["grant_accepted"] and answer["lease_until"] == pytest.approx(clock.mono + 2)
    clock.advance(1.99)
    assert primary_refusal(core, [], clock.mono) is None
    assert primary_refusal(core, ["db"], clock.mono) == "critical service failing: db"
    clock.advance(0.02)
    assert primary_refusal(core, [], clock.mono) == "lease ran out 0.0s ago (no grant since)"


def test_it_never_shortens_a_lease(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    grant(core, clock, lease_s=2.0)
    until = core.lease_until
    grant(core, clock, lease_s=0.5)
    assert core.lease_until == until


def test_a_peer_grant_is_capped_at_the_commanded_lease_after_a_settings_change(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1, lease_s=2.0)
    body = {"epoch": 1, "lease_s": 9.0, "sent_at": clock.wall}
    assert core.heartbeat(body, clock.mono, clock.wall, from_peer=True)["lease_until"] == pytest.approx(clock.mono + 2)
    # The control plane shortens the lease; the secondary, not told yet, still grants the old one.
    role(core, "primary", 1, 2, lease_s=1.5)
    clock.advance(1.9)
    body = {"epoch": 1, "lease_s": 2.0, "sent_at": clock.wall}
    answer = core.heartbeat(body, clock.mono, clock.wall, from_peer=True)
    assert answer["grant_accepted"] and answer["lease_until"] == pytest.approx(clock.mono + 1.5)
    body = {"epoch": 1, "lease_s": 1.0, "sent_at": clock.wall}  # less than commanded: taken as it is
    assert core.heartbeat(body, clock.mono, clock.wall, from_peer=True)["grant_accepted"]
    assert core.heartbeat({**body, "lease_s": 9.0}, clock.mono, clock.wall)["lease_until"] == pytest.approx(
        clock.mono + 9
    )  # the control plane's own grant is not capped


@pytest.mark.parametrize(
    "epoch,delay,reason",
    [
        (2, 0.0, "epoch"),
        (0, 0.0, "epoch"),
        (1, 0.3, "max_grant_delay"),
        (1, -0.2, "max_clock_skew"),
    ],
)
def test_it_refuses_grants_of_another_epoch_or_outside_the_time_window(
    clock: Clock, epoch: int, delay: float, reason: str
) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    answer = grant(core, clock, epoch=epoch, delay=delay)
    assert answer["grant_accepted"] is False
    assert reason in answer["grant_refused_reason"]
    assert not core.holds_lease()


def test_it_accepts_grants_at_the_edges_of_the_window(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    assert grant(core, clock, delay=0.25)["grant_accepted"]
    assert grant(core, clock, delay=-0.1)["grant_accepted"]


def test_it_ignores_seq_for_grants(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 7)
    assert grant(core, clock)["grant_accepted"]


def test_a_zero_lease_is_a_probe(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    answer = grant(core, clock, lease_s=0)
    assert answer["grant_accepted"] is False and "probe" in answer["grant_refused_reason"]


@pytest.mark.parametrize("epoch,seq", [(1, 5), (1, 4), (0, 9)])
def test_it_refuses_commands_not_newer_than_held(clock: Clock, epoch: int, seq: int) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 5)
    with pytest.raises(Refused) as info:
        role(core, "primary", epoch, seq)
    assert info.value.answer["role"] == "secondary"
    assert (info.value.answer["epoch"], info.value.answer["seq"]) == (1, 5)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"role": "boss", "epoch": 1, "seq": 1}, "role"),
        ({"role": "primary", "epoch": "1", "seq": 1}, "epoch"),
        ({"role": "primary", "epoch": 1}, "seq"),
        ({"role": "primary", "epoch": True, "seq": 1}, "epoch"),
        ({"role": "primary", "epoch": 1, "seq": 1, "lease_s": "x"}, "lease_s"),
        ({"role": "candidate", "epoch": 1, "seq": 1}, "candidacy"),
        ([1, 2], "object"),
    ],
)
def test_it_explains_malformed_commands(clock: Clock, body: Any, field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        make_core(clock).apply_role(body)


def test_demotion_stops_serving_at_once_and_logs_the_stop(clock: Clock) -> None:
    log: list[dict[str, Any]] = []
    core = make_core(clock, log=log)
    role(core, "primary", 1, 1)
    grant(core, clock)
    clock.advance(0.5)
    role(core, "secondary", 2, 2)
    assert not core.holds_lease()
    assert log[-1] == {"stop": clock.mono}


def test_serving_log_is_written_before_the_lease_is_extended(clock: Clock, tmp_path) -> None:
    path = tmp_path / "serving.log"
    from agent.servinglog import ServingLog

    writer = ServingLog(path)
    core = make_core(clock)
    core._serving_log = writer
    role(core, "primary", 1, 1)
    start = clock.mono
    grant(core, clock)
    clock.advance(1)
    grant(core, clock)
    clock.advance(0.5)
    role(core, "secondary", 2, 2)
    writer.close()
    assert read_serving_intervals(path) == [(start, clock.mono)]


def test_candidate_stops_granting_and_reports_its_last_grant(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    assert send_grant(core)["lease_s"] == 2.0
    core.grant_answered()
    clock.advance(0.4)
    answer = role(core, "candidate", 1, 2, candidacy={"id": "c1", "deadline_s": 5})
    assert answer["last_grant_sent_age_s"] == pytest.approx(0.4)
    assert answer["candidacy"]["id"] == "c1"
    assert send_grant(core)["lease_s"] == 0  # a candidate only probes


def test_candidacy_reverts_to_secondary_after_its_deadline(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    role(core, "candidate", 1, 2, candidacy={"id": "c1", "deadline_s": 5})
    clock.advance(5)
    assert core.status()["role"] == "candidate"
    core.expire()
    assert core.role == "secondary" and core.candidacy is None
    with pytest.raises(Refused, match="not candidate"):
        role(core, "primary", 2, 3, candidacy={"id": "c1"}, grant={"lease_s": 2, "sent_at": clock.wall})


def test_promotion_needs_the_candidacy_id(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    role(core, "candidate", 1, 2, candidacy={"id": "c1", "deadline_s": 5})
    with pytest.raises(Refused, match="c1"):
        role(core, "primary", 2, 3, candidacy={"id": "other"}, grant={"lease_s": 2, "sent_at": clock.wall})
    with pytest.raises(Refused, match="candidacy id"):
        role(core, "primary", 2, 4)
    answer = role(core, "primary", 2, 5, candidacy={"id": "c1"}, grant={"lease_s": 2, "sent_at": clock.wall})
    assert answer["role"] == "primary" and answer["grant_accepted"]
    assert core.holds_lease()


def test_secondary_stops_granting_after_a_missed_slot_and_resumes(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    send_grant(core)
    core.grant_failed(refused=False)
    sent = core.last_grant_sent
    assert core.peer_fields(clock.mono)["ok"] is False
    clock.advance(1)
    assert send_grant(core)["lease_s"] == 0 and core.last_grant_sent == sent
    core.grant_answered()
    assert send_grant(core)["lease_s"] == 2.0


def test_a_grant_that_never_left_is_not_recorded(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    assert core.begin_grant() == "http://peer"
    core.grant_failed(refused=True)  # the connection was refused: the body was never asked for
    assert core.last_grant_sent is None


def test_a_grant_is_stamped_and_recorded_when_it_leaves_not_when_its_slot_began(clock: Clock) -> None:
    secondary = make_core(clock)
    role(secondary, "secondary", 1, 1, lease_s=4.0, interval_s=2.0)
    peer_url = secondary.begin_grant()
    clock.advance(1.0)  # connecting: a lost SYN is retransmitted after 1 s
    body = secondary.grant_leaving(peer_url)
    assert body == {"epoch": 1, "lease_s": 4.0, "sent_at": clock.wall}
    assert secondary.last_grant_sent == clock.mono
    primary = make_core(clock)
    role(primary, "primary", 1, 1)
    assert primary.heartbeat(body, clock.mono, clock.wall)["grant_accepted"] is True


def test_a_candidacy_that_arrives_while_connecting_turns_the_grant_into_a_probe(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    peer_url = core.begin_grant()
    answer = role(core, "candidate", 1, 2, candidacy={"id": "c1", "deadline_s": 5})
    assert answer["last_grant_sent_age_s"] is None
    assert core.grant_leaving(peer_url)["lease_s"] == 0
    assert core.last_grant_sent is None  # the age the candidacy reported still holds


def test_a_grant_begun_for_a_peer_no_longer_configured_is_a_probe(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    peer_url = core.begin_grant()
    role(core, "secondary", 1, 2, peer_url="http://new-peer")
    assert core.grant_leaving(peer_url)["lease_s"] == 0


def test_after_a_restart_the_last_grant_counts_as_sent_at_start(clock: Clock) -> None:
    saved: list[dict[str, Any]] = []
    core = make_core(clock, saved=saved)
    role(core, "secondary", 3, 9)
    clock.advance(10)
    restarted = make_core(clock, state=saved[-1])
    assert (restarted.role, restarted.epoch, restarted.seq) == ("secondary", 3, 9)
    assert restarted.last_grant_sent == clock.mono
    assert restarted.settings.lease_s == 2.0


def test_primary_at_a_new_epoch_drops_the_old_lease(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    grant(core, clock)
    role(core, "primary", 1, 2)  # a settings update keeps the lease
    assert core.holds_lease()
    role(core, "primary", 2, 3)
    assert not core.holds_lease()


NEW_TIMING = {"interval_s": 0.5, "lease_s": 1.0, "max_grant_delay": 0.3, "max_clock_skew": 0.05}


def test_a_settings_change_keeps_the_primarys_lease_and_is_reported(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "primary", 1, 1)
    grant(core, clock, lease_s=2.0)
    until = core.lease_until
    clock.advance(0.5)
    answer = role(core, "primary", 1, 2, **NEW_TIMING)
    assert answer["lease_until"] == pytest.approx(until) and core.holds_lease()
    assert grant(core, clock, lease_s=0)["settings"] == NEW_TIMING


def test_a_settings_change_leaves_the_secondarys_granting_as_it_was(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    send_grant(core)
    core.grant_answered()
    sent = core.last_grant_sent
    clock.advance(0.3)
    role(core, "secondary", 1, 2, **NEW_TIMING)
    assert core.last_grant_sent == sent
    assert send_grant(core)["lease_s"] == 1.0  # still granting, with the new lease
    core.grant_failed(refused=False)
    role(core, "secondary", 1, 3, **{**NEW_TIMING, "lease_s": 1.5})
    assert send_grant(core)["lease_s"] == 0  # a silent peer still gets probes only


def test_inventory_commands_are_ordered_and_keep_the_epoch(clock: Clock) -> None:
    core = make_core(clock)
    role(core, "secondary", 1, 1)
    core.accept_seq(1, 2, "inventory")
    with pytest.raises(Refused):
        core.accept_seq(1, 2, "inventory")
    with pytest.raises(Refused, match="role command"):
        core.accept_seq(2, 1, "inventory")
    assert core.seq == 2


def test_read_serving_intervals_merges_and_caps(tmp_path) -> None:
    path = tmp_path / "serving.log"
    path.write_text(
        '{"start": 1, "end": 3, "epoch": 1}\n{"start": 2, "end": 4, "epoch": 1}\n'
        '{"stop": 3.5}\n{"start": 10, "end": 12, "epoch": 1}\n{"start": 11, "en'
    )
    assert read_serving_intervals(path) == [(1.0, 3.5), (10.0, 12.0)]
    assert read_serving_intervals(tmp_path / "missing.log") == []


def test_a_command_that_cannot_be_saved_is_not_held(clock: Clock) -> None:
    def broken_disk(state: dict[str, Any]) -> None:
        raise OSError("disk full")

    core = make_core(clock)
    role(core, "primary", 1, 1)
    grant(core, clock)
    core._persist = broken_disk
    with pytest.raises(OSError):
        role(core, "secondary", 2, 2)
    assert (core.role, core.epoch, core.seq) == ("primary", 1, 1)
    assert not core.holds_lease()  # serving stopped anyway: the safe side


def test_the_hook_hears_every_change_of_role_or_epoch_with_the_cluster_name(clock: Clock) -> None:
    calls: list[tuple[str, int, str]] = []
    core = make_core(clock, hook=lambda *change: calls.append(change))
    role(core, "secondary", 1, 1, cluster="dmm-a")
    role(core, "secondary", 1, 2, **NEW_TIMING)  # settings only: not a change of role
    role(core, "candidate", 1, 3, candidacy={"id": "c1", "deadline_s": 5})
    role(core, "primary", 2, 4, candidacy={"id": "c1"})
    role(core, "secondary", 3, 5)
    assert calls == [
        ("secondary", 1, "dmm-a"),
        ("candidate", 1, "dmm-a"),
        ("primary", 2, "dmm-a"),
        ("secondary", 3, "dmm-a"),
    ]


def test_the_hook_hears_an_expired_candidacy_and_the_agent_name_without_a_cluster(clock: Clock) -> None:
    calls: list[tuple[str, int, str]] = []
    core = make_core(clock, hook=lambda *change: calls.append(change))
    role(core, "candidate", 4, 1, candidacy={"id": "c1", "deadline_s": 5})
    clock.advance(5)
    core.expire()
    assert calls == [("candidate", 4, "t"), ("secondary", 4, "t")]


def test_a_hook_that_cannot_start_never_fails_the_role_change(clock: Clock) -> None:
    saved: list[dict[str, Any]] = []

    def broken(*change: object) -> None:
        raise RuntimeError("no event loop")

    core = make_core(clock, saved=saved, hook=broken)
    answer = role(core, "primary", 1, 1)
    assert answer["role"] == "primary" and saved[-1]["role"] == "primary"
