"""Real dms-agent processes for integration tests.

`AgentProcess` runs `python -m agent` as a subprocess on free loopback ports (heartbeat and
intranet), with its own data and state directories under a base directory. Ports are chosen once,
so a restarted agent keeps its URLs (peers and the control plane need not be told). Waiting is
always polling with a deadline, never a blind sleep.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.credentials import peer_credential

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKEN = "test-agent-token"

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the agent binds it with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.02, message: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class AgentProcess:
    """One `python -m agent` subprocess.

    `checks` are dicts `{name, command, critical, interval, timeout}`; `tls` is a
    `(cert_path, key_path)` pair; `inventory` a dict written to a file and passed as
    `--inventory`; `prefix` goes before the command (e.g. `unshare ...`). Calls go through
    `request()` (a new connection each time, so a stopped or killed agent cannot wedge a pooled
    connection).
    """

    def __init__(
        self,
        base_dir: Path,
        name: str = "agent",
        *,
        token: str | None = None,
        checks: list[dict[str, Any]] | None = None,
        clock_offset: float = 0.0,
        tls: tuple[Path, Path] | None = None,
        peer_ca: Path | None = None,
        intranet: bool = True,
        inventory: dict[str, Any] | None = None,
        max_body_mb: float | None = None,
        extra_args: list[str] | None = None,
        host: str = "127.0.0.1",
        prefix: list[str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.name = name
        # A token of its own per agent (unless given), so a mix-up between two agents' credentials shows.
        self.token = token or f"{DEFAULT_TOKEN}-{name}"
        self.checks = checks or []
        self.clock_offset = clock_offset
        self.tls = tls
        self.peer_ca = peer_ca
        self.inventory = inventory
        self.max_body_mb = max_body_mb
        self.extra_args = extra_args or []
        self.prefix = prefix or []
        self.host = host
        self.heartbeat_port = free_port(host)
        self.intranet_port = free_port(host) if intranet else None
        self.state_dir = self.base_dir / "state"
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_dir.mkdir(parents=True, exist_ok=True)

    @property
    def peer_credential(self) -> str:
        """What this agent's peer may hold: heartbeats and data reads only (agent/credentials.py)."""
        return peer_credential(self.token)

    # -- URLs -------------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def heartbeat_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.heartbeat_port}"

    @property
    def intranet_url(self) -> str | None:
        if self.intranet_port is None:
            return None
        return f"{self.scheme}://{self.host}:{self.intranet_port}"

    # -- process control --------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [
            *self.prefix,
            sys.executable,
            "-m",
            "agent",
            "--name",
            self.name,
            "--heartbeat-listen",
            f"{self.host}:{self.heartbeat_port}",
            "--data-dir",
            str(self.data_dir),
            "--state-dir",
            str(self.state_dir),
            "--clock-offset",
            repr(self.clock_offset),
        ]
        if self.intranet_port is not None:
            cmd += ["--intranet-listen", f"{self.host}:{self.intranet_port}"]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        if self.peer_ca:
            cmd += ["--peer-ca", str(self.peer_ca)]
        for check in self.checks:
            cmd += ["--check", json.dumps(check)]
        if self.inventory is not None:
            path = self.base_dir / "inventory-seed.json"
            path.write_text(json.dumps(self.inventory))
            cmd += ["--inventory", str(path)]
        if self.max_body_mb is not None:
            cmd += ["--max-body-mb", repr(self.max_body_mb)]
        return cmd + self.extra_args

    def start(self) -> AgentProcess:
        """Start the process (the token goes by environment, not on the command line)."""
        if self.running:
            raise RuntimeError(f"agent {self.name} is already running")
        env = {**os.environ, "DMS_AGENT_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        pythonpath = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pythonpath if pythonpath else "")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait_ready(self, timeout: float = 10.0) -> AgentProcess:
        """Poll `GET /v1/primary` until the agent answers at all (200 or 503)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"agent {self.name} exited before it was ready:\n" + self.log_text()[-3000:])
            try:
                status, _ = self.request("GET", "/v1/primary", timeout=0.5, auth=False)
                if status in (200, 503):
                    return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"agent {self.name} not ready after {timeout}s:\n" + self.log_text()[-3000:])
            time.sleep(0.02)

    def start_with_fresh_ports(self, timeout: float = 10.0, attempts: int = 3) -> AgentProcess:
        """First start: if another process grabbed a chosen port meanwhile, pick new ports."""
        for attempt in range(attempts):
            try:
                return self.start().wait_ready(timeout)
            except RuntimeError:
                if attempt == attempts - 1 or "in use" not in self.log_text():
                    raise
                self.heartbeat_port = free_port(self.host)
                if self.intranet_port is not None:
                    self.intranet_port = free_port(self.host)
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """SIGKILL: the crash case (nothing is flushed or cleaned up by the agent)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)  # a stopped process dies at once either way
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait for a clean exit (SIGKILL if it takes longer than `timeout`)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self) -> None:
        """SIGSTOP: the pause case (a frozen VM, a long GC); the lease runs out meanwhile."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart(self, timeout: float = 10.0) -> AgentProcess:
        self.kill()
        return self.start().wait_ready(timeout)

    # -- observation ------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def serving_intervals(self) -> list[tuple[float, float]]:
        """Merged (start, end) serving intervals from the agent's serving log (`agent.clock.mono`)."""
        from agent.servinglog import FILE_NAME, read_serving_intervals

        return read_serving_intervals(self.state_dir / FILE_NAME)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls[0]))
        ctx.check_hostname = False  # tests reach it by IP; the certificate itself is verified
        return ctx

    # -- calls ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        token: str | None = None,
        timeout: float = 5.0,
        url: str | None = None,
    ) -> tuple[int, Any]:
        """Send one request; return (status, decoded JSON or raw bytes when not JSON or HEAD).

        `path` is sent exactly as given (no normalisation), so traversal tests can use it.
        `url` picks another base URL of this agent (e.g. `intranet_url`).
        """
        port = self.heartbeat_port
        if url is not None:
            port = int(url.rsplit(":", 1)[1])
        if self.tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, port, timeout=timeout, context=self.ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, port, timeout=timeout)
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = f"Bearer {token if token is not None else self.token}"
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if method != "HEAD" and resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, json.loads(data)
        return resp.status, data

    def role(self, role: str, epoch: int, seq: int, **fields: Any) -> tuple[int, Any]:
        """`POST /v1/role` with the test defaults (interval 0.5 s, lease 1 s)."""
        body = {
            "role": role,
            "epoch": epoch,
            "seq": seq,
            "interval_s": 0.5,
            "lease_s": 1.0,
            "max_grant_delay": 0.25,
            "max_clock_skew": 0.1,
            **fields,
        }
        return self.request("POST", "/v1/role", body)

    def heartbeat(self, epoch: int, lease_s: float, sent_at: float | None = None, **kw: Any) -> dict[str, Any]:
        """`POST /v1/heartbeat`; `sent_at` defaults to this host's wall clock now."""
        status, answer = self.request(
            "POST",
            "/v1/heartbeat",
            {"epoch": epoch, "lease_s": lease_s, "sent_at": time.time() if sent_at is None else sent_at},
            **kw,
        )
        assert status == 200, (status, answer)
        return answer

    def primary_status(self, url: str | None = None) -> int:
        return self.request("GET", "/v1/primary", auth=False, url=url, timeout=2)[0]

    def wait_primary_status(self, status: int, timeout: float = 5.0) -> None:
        wait_until(lambda: self.primary_status() == status, timeout, message=f"{self.name} /v1/primary == {status}")

    def cleanup(self) -> None:
        self.kill()


class AgentFactory:
    """Starts agents under one base directory and kills every one of them at `close()`."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.agents: list[AgentProcess] = []

    def __call__(
        self, name: str = "agent", *, start: bool = True, ready_timeout: float = 10.0, **kwargs: Any
    ) -> AgentProcess:
        agent = AgentProcess(self.base_dir / name, name, **kwargs)
        self.agents.append(agent)
        if start:
            agent.start_with_fresh_ports(ready_timeout)
        return agent

    def close(self) -> None:
        for agent in self.agents:
            agent.cleanup()


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[AgentFactory]:
    """`agent_factory("a1", checks=[...])` → a started, ready `AgentProcess`; all killed after.

    Use it from a conftest.py: `from tests.support.agents import agent_factory  # noqa: F401`.
    """
    factory = AgentFactory(tmp_path / "agents")
    try:
        yield factory
    finally:
        factory.close()
