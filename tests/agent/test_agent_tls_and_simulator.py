"""HTTPS on both listeners (DESIGN §4.7), and the many-appliance simulator for benchmarks."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support.agents import REPO_ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def test_tls_serves_both_listeners_and_secondary_grants_over_https(agent_factory, tls_cert) -> None:
    cert, _ = tls_cert
    primary = agent_factory("p", tls=tls_cert)
    secondary = agent_factory("s", tls=tls_cert, peer_ca=cert)
    assert primary.heartbeat_url.startswith("https://")
    assert primary.primary_status() == 503
    assert primary.primary_status(primary.intranet_url) == 503
    with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP gets no answer
        urllib.request.urlopen(f"http://127.0.0.1:{primary.heartbeat_port}/v1/primary", timeout=2)
    settings = {"interval_s": 0.2, "lease_s": 0.6}
    primary.role("primary", 1, 1, **settings)
    secondary.role("secondary", 1, 2, peer_url=primary.heartbeat_url, peer_token=primary.peer_credential, **settings)
    primary.wait_primary_status(200, timeout=3)  # granted by the secondary, over verified TLS
    assert secondary.heartbeat(0, 0)["peer"]["ok"] is True


def test_an_unverifiable_peer_certificate_is_no_answer(agent_factory, tls_cert) -> None:
    primary = agent_factory("p", tls=tls_cert)
    secondary = agent_factory("s")  # no --peer-ca: the self-signed certificate fails
    primary.role("primary", 1, 1, interval_s=0.2, lease_s=0.6)
    secondary.role(
        "secondary",
        1,
        2,
        peer_url=primary.heartbeat_url,
        peer_token=primary.peer_credential,
        interval_s=0.2,
        lease_s=0.6,
    )
    wait_until(lambda: secondary.heartbeat(0, 0)["peer"]["ok"] is False, 3, message="peer not trusted")
    assert primary.primary_status() == 503


@pytest.fixture
def simulator(tmp_path):
    port = free_port()
    log = open(tmp_path / "sim.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.simulate", "--count", "200", "--port", str(port), "--token", "T", "--primaries"],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(base + "/a/0/v1/primary", timeout=0.5)
        except urllib.error.HTTPError:
            return True
        except OSError:
            assert proc.poll() is None, (tmp_path / "sim.log").read_text()
            return False
        return True

    try:
        wait_until(up, 10, message="simulator up")
        yield base
    finally:
        proc.kill()
        proc.wait()
        log.close()


def call(base: str, method: str, path: str, body=None, token: str | None = "T"):
    request = urllib.request.Request(
        base + path, method=method, data=None if body is None else json.dumps(body).encode()
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_simulator_answers_under_prefixes(simulator) -> None:
    status, answer = call(simulator, "POST", "/a/199/v1/heartbeat", {"epoch": 1, "lease_s": 2, "sent_at": time.time()})
    assert status == 200 and answer["grant_accepted"] is True and answer["name"] == "sim-199"
    assert call(simulator, "GET", "/a/199/v1/primary", token=None)[0] == 200
    assert call(simulator, "GET", "/a/198/v1/primary", token=None)[0] == 503
    assert call(simulator, "POST", "/a/1/v1/heartbeat", {"epoch": 1}, token=None)[0] == 401
    assert call(simulator, "GET", "/a/200/v1/primary", token=None)[0] == 404
    assert call(simulator, "GET", "/a/3/v1/health", token=None)[1]["role"] == "primary"
    assert call(simulator, "GET", "/a/3/v1/replica", token=None)[0] == 503
    assert call(simulator, "GET", "/a/3/v1/inventory", token=None)[0] == 401
    status, body = call(simulator, "POST", "/a/5/v1/role", {"role": "secondary", "epoch": 1, "seq": 1})
    assert status == 409 and body["role"] == "primary"
    status, body = call(simulator, "POST", "/a/5/v1/role", {"role": "secondary", "epoch": 2, "seq": 2})
    assert status == 200 and body["role"] == "secondary"
    assert call(simulator, "GET", "/a/5/v1/inventory")[0] == 200
    assert call(simulator, "POST", "/a/5/v1/heartbeat", {"bad": 1})[0] == 400
