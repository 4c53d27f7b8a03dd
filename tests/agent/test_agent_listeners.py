"""Which calls each listener serves, and on which addresses plain HTTP is allowed (issue 13): the
intranet listener, which users' networks reach, serves only what load balancers and the
application read plus the control plane's fallback heartbeat."""

from __future__ import annotations

import time

import pytest

from tests.support.agents import wait_until

pytestmark = pytest.mark.integration

CONTROL_CALLS = [
    ("POST", "/v1/role", {"role": "secondary", "epoch": 9, "seq": 9}),
    ("GET", "/v1/inventory", None),
    ("PUT", "/v1/inventory", {"epoch": 1, "seq": 9, "licenses": []}),
    ("GET", "/v1/data/manifest", None),
    ("GET", "/v1/data/files/a.txt", None),
    ("DELETE", "/v1/data/files/a.txt", None),
    ("POST", "/v1/data/batch", {"paths": ["a.txt"]}),
    ("POST", "/v1/sync", {"source_url": "http://127.0.0.1:1", "source_token": "t", "epoch": 1, "seq": 9}),
    ("GET", "/v1/sync/x", None),
    ("GET", "/", None),
]


def test_the_intranet_listener_serves_no_control_call(agent_factory) -> None:
    agent = agent_factory("a")
    (agent.data_dir / "a.txt").write_text("kept")
    assert agent.role("primary", 1, 1)[0] == 200
    for method, path, body in CONTROL_CALLS:
        for auth in (True, False):
            status, answer = agent.request(method, path, body, auth=auth, url=agent.intranet_url)
            assert status == 404 and "error" in answer, (method, path, auth, status)
    status, _ = agent.request(
        "PUT", "/v1/data/files/a.txt", raw=b"x", headers={"X-Sha256": "0" * 64}, url=agent.intranet_url
    )
    assert status == 404
    # Nothing happened, and the heartbeat listener still serves them all.
    answer = agent.heartbeat(0, 0)
    assert (answer["role"], answer["epoch"], answer["seq"]) == ("primary", 1, 1)
    assert (agent.data_dir / "a.txt").read_text() == "kept"
    assert agent.request("GET", "/v1/inventory")[0] == 200
    assert agent.request("GET", "/v1/data/manifest")[0] == 200


def test_the_intranet_listener_serves_the_open_paths_and_the_fallback_heartbeat(agent_factory) -> None:
    agent = agent_factory("a")
    agent.role("primary", 1, 1)
    url = agent.intranet_url
    status, body = agent.request("POST", "/v1/heartbeat", {"epoch": 1, "lease_s": 5, "sent_at": time.time()}, url=url)
    assert status == 200 and body["grant_accepted"] is True
    assert (
        agent.request("POST", "/v1/heartbeat", {"epoch": 1, "lease_s": 5, "sent_at": 1}, auth=False, url=url)[0] == 401
    )
    assert agent.request("GET", "/v1/primary", auth=False, url=url)[0] == 200
    assert agent.request("HEAD", "/v1/primary", auth=False, url=url) == (200, b"")
    assert agent.request("GET", "/v1/replica", auth=False, url=url)[0] == 503
    assert agent.request("GET", "/v1/health", auth=False, url=url)[1]["role"] == "primary"


def test_plain_http_beyond_loopback_needs_insecure(agent_factory) -> None:
    refused = agent_factory("refused", start=False, host="0.0.0.0")
    refused.start()
    assert refused.proc is not None and refused.proc.wait(20) == 2
    text = refused.log_text()
    assert f"refusing plain HTTP on 0.0.0.0:{refused.heartbeat_port}, 0.0.0.0:{refused.intranet_port}" in text
    assert "--insecure" in text and "Traceback" not in text

    allowed = agent_factory("allowed", host="0.0.0.0", extra_args=["--insecure"])
    assert allowed.primary_status() == 503
    wait_until(lambda: "--insecure: plain HTTP on 0.0.0.0" in allowed.log_text(), 5, message="the warning")


def test_https_beyond_loopback_needs_no_flag(agent_factory, tls_cert) -> None:
    agent = agent_factory("tls", host="0.0.0.0", tls=tls_cert)
    assert agent.primary_status() == 503 and agent.primary_status(agent.intranet_url) == 503
