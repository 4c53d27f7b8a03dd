"""The two credentials of an agent (issue 13, docs/decisions.md "Credentials between appliances"):
the control token does everything; the peer credential, which the control plane hands the other
appliance, only sends heartbeats (grants capped at the commanded lease) and reads data for a sync."""

from __future__ import annotations

import hashlib
import time

import pytest

from agent.credentials import peer_credential
from tests.agent.sync_pair import Pair, write

pytestmark = pytest.mark.integration


def test_the_peer_credential_is_a_fixed_derivation_of_the_control_token() -> None:
    # Pinned: the control plane and agents of another release must derive the same value
    # (`printf dms-peer-credential | openssl dgst -sha256 -hmac test-agent-token`).
    assert peer_credential("test-agent-token") == "93b0e450c15bb350f4446ebf96ef77bcdd9b4b4ca7ab47577a07b033b56659e6"
    assert peer_credential("another-token") != peer_credential("test-agent-token")


def refused(status_answer: tuple[int, object]) -> bool:
    status, answer = status_answer
    return status == 403 and "needs the control token" in answer["error"]


def test_a_peer_credential_cannot_command_its_peer(pair: Pair) -> None:
    primary, secondary = pair.primary, pair.secondary
    write(primary.data_dir, "kept.txt", b"the primary's data")
    body = b"planted"
    planted = {"X-Sha256": hashlib.sha256(body).hexdigest()}
    # The secondary holds the primary's peer credential, and the primary the secondary's.
    on_primary, on_secondary = primary.peer_credential, secondary.peer_credential

    # Demote the primary, push its seq out of the control plane's reach, or touch its data: 403.
    assert refused(primary.request("POST", "/v1/role", {"role": "secondary", "epoch": 2, "seq": 1}, token=on_primary))
    assert refused(primary.request("POST", "/v1/role", {"role": "primary", "epoch": 1, "seq": 999}, token=on_primary))
    assert refused(primary.request("PUT", "/v1/inventory", {"epoch": 1, "seq": 999, "licenses": []}, token=on_primary))
    assert refused(primary.request("GET", "/v1/inventory", token=on_primary))
    assert refused(primary.request("DELETE", "/v1/data/files/kept.txt", token=on_primary))
    assert refused(primary.request("PUT", "/v1/data/files/new.txt", raw=body, headers=planted, token=on_primary))
    # Promote the secondary, or start a sync on it (from a source of the attacker's choosing): 403.
    candidacy = {"id": "x", "deadline_s": 30}
    assert refused(
        secondary.request(
            "POST", "/v1/role", {"role": "candidate", "epoch": 2, "seq": 5, "candidacy": candidacy}, token=on_secondary
        )
    )
    assert refused(
        secondary.request(
            "POST",
            "/v1/sync",
            {"source_url": primary.heartbeat_url, "source_token": on_primary, "epoch": 1, "seq": 5},
            token=on_secondary,
        )
    )
    assert refused(secondary.request("GET", "/v1/sync/x", token=on_secondary))

    # Nothing happened.
    assert primary.request("GET", "/v1/health", auth=False)[1] | {"uptime_s": 0} == {
        "alive": True,
        "name": "p",
        "role": "primary",
        "epoch": 1,
        "seq": 1,
        "uptime_s": 0,
    }
    held = secondary.request("GET", "/v1/health", auth=False)[1]
    assert (held["role"], held["epoch"], held["seq"]) == ("secondary", 1, 1)
    assert (primary.data_dir / "kept.txt").read_bytes() == b"the primary's data"
    assert not (primary.data_dir / "new.txt").exists()
    # The same calls are well formed: with the control token they go through.
    assert primary.request("PUT", "/v1/data/files/new.txt", raw=body, headers=planted)[0] == 201
    assert primary.request("PUT", "/v1/inventory", {"epoch": 1, "seq": 2, "licenses": []})[0] == 200


def test_a_peer_credential_grants_and_reads_what_a_sync_needs(pair: Pair) -> None:
    primary = pair.primary
    token = primary.peer_credential
    write(primary.data_dir, "a.txt", b"alpha")
    assert primary.heartbeat(1, 1.0, token=token)["grant_accepted"] is True
    assert primary.primary_status() == 200
    status, manifest = primary.request("GET", "/v1/data/manifest", token=token)
    assert status == 200 and [f["path"] for f in manifest["files"]] == ["a.txt"]
    assert primary.request("GET", "/v1/data/files/a.txt", token=token) == (200, b"alpha")
    assert primary.request("HEAD", "/v1/data/files/a.txt", token=token) == (200, b"")
    status, raw = primary.request("POST", "/v1/data/batch", {"paths": ["a.txt"]}, token=token)
    assert status == 200 and raw.endswith(b"alpha")
    # A whole sync with it (the pair's syncs all use the primary's peer credential as source_token).
    assert pair.sync()["files_done"] == 1
    assert (pair.secondary.data_dir / "a.txt").read_bytes() == b"alpha"


def test_a_peer_grant_is_capped_at_the_lease_the_control_plane_commanded(pair: Pair) -> None:
    primary = pair.primary  # commanded lease_s 1.0 (the test default)
    answer = primary.heartbeat(1, 30.0, token=primary.peer_credential)
    assert answer["grant_accepted"] is True and answer["settings"]["lease_s"] == 1.0
    assert 0 < answer["lease_remaining_s"] <= 1.0
    assert "peer grant of 30s capped at the commanded lease 1s" in primary.log_text()
    # The control plane's own grant is not capped.
    assert primary.heartbeat(1, 30.0)["lease_remaining_s"] > 25


def test_the_intranet_listener_takes_no_peer_credential(pair: Pair) -> None:
    primary = pair.primary
    grant = {"epoch": 1, "lease_s": 1.0, "sent_at": time.time()}
    status, answer = primary.request(
        "POST", "/v1/heartbeat", grant, token=primary.peer_credential, url=primary.intranet_url
    )
    assert status == 401 and answer["error"] == "missing or wrong bearer token"
