"""What one appliance can do to its peer with what the control plane gave it (issue 13): a cluster
configured and synced by the control plane leaves each agent holding only its peer's peer
credential, which heartbeats and reads data but cannot change the peer's role, seq or data, nor
start a sync on it."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support.agents import wait_until
from tests.support.controlplane import tree_digest

pytestmark = pytest.mark.integration

FILES = {"media/intro.mp4": b"intro" * 1000, "playlists/lobby.xml": b"<playlist/>"}


def held_peer_token(agent) -> str:
    """The peer token an agent keeps in its state directory: what a break-in on it would find."""
    return json.loads((agent.state_dir / "state.json").read_text())["settings"]["peer_token"]


def test_an_appliance_holds_no_credential_that_commands_its_peer(make_cluster):
    under_test = make_cluster("least-privilege", files=FILES)
    primary, secondary = under_test.primary_agent, under_test.secondary_agent
    # The initial sync ran with the primary's peer credential as source_token.
    assert tree_digest(secondary.data_dir) == tree_digest(primary.data_dir) != {}
    stolen_from_secondary, stolen_from_primary = held_peer_token(secondary), held_peer_token(primary)
    assert stolen_from_secondary != primary.token and stolen_from_primary != secondary.token
    epoch = under_test.refresh().epoch
    seq = primary.request("GET", "/v1/health", auth=False)[1]["seq"]

    def refused(agent, method: str, path: str, body=None, token: str = "", **kw) -> bool:
        status, answer = agent.request(method, path, body, token=token, **kw)
        return status == 403 and "needs the control token" in answer["error"]

    # From the secondary, against the primary: demote it, push its seq, delete or plant data.
    planted = b"planted"
    assert refused(
        primary, "POST", "/v1/role", {"role": "secondary", "epoch": epoch + 1, "seq": 1}, stolen_from_secondary
    )
    assert refused(primary, "PUT", "/v1/inventory", {"epoch": epoch, "seq": seq + 1000}, stolen_from_secondary)
    assert refused(primary, "DELETE", "/v1/data/files/playlists/lobby.xml", token=stolen_from_secondary)
    assert refused(
        primary,
        "PUT",
        "/v1/data/files/playlists/lobby.xml",
        raw=planted,
        headers={"X-Sha256": hashlib.sha256(planted).hexdigest()},
        token=stolen_from_secondary,
    )
    # From the primary, against the secondary: promote it, or make it sync from elsewhere.
    candidacy = {"id": "stolen", "deadline_s": 30}
    assert refused(
        secondary,
        "POST",
        "/v1/role",
        {"role": "candidate", "epoch": epoch + 1, "seq": 1, "candidacy": candidacy},
        stolen_from_primary,
    )
    sync = {"source_url": primary.heartbeat_url, "source_token": stolen_from_secondary, "epoch": epoch, "seq": seq + 1}
    assert refused(secondary, "POST", "/v1/sync", sync, stolen_from_primary)

    # Nothing changed, and the peers still grant and answer each other with what they hold.
    assert primary.heartbeat(0, 0)["role"] == "primary" and secondary.heartbeat(0, 0)["role"] == "secondary"
    assert primary.request("GET", "/v1/health", auth=False)[1]["seq"] == seq
    assert (primary.data_dir / "playlists/lobby.xml").read_bytes() == b"<playlist/>"
    assert (
        primary.heartbeat(epoch, 0, token=stolen_from_secondary)["grant_refused_reason"] == "lease_s is 0 (probe only)"
    )
    wait_until(
        lambda: (peer := secondary.heartbeat(0, 0)["peer"])["ok"] and peer["last_grant_sent_age_s"] is not None,
        10,
        message="the secondary's grants answered",
    )
    assert "peer refused our token" not in secondary.log_text()
    assert under_test.refresh().state == "healthy" and under_test.cluster.epoch == epoch
    under_test.assert_never_two_primaries()
