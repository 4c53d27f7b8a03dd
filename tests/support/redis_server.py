"""A private redis-server for the test suite, on its own port, so that restart faults (DESIGN §4a
rule 3: a Redis restart loses grants, fences and queued tasks) can restart it without touching the
machine's Redis."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.agents import wait_until


class PrivateRedis:
    def __init__(self, url: str, workdir: Path):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.workdir = Path(workdir)
        self.pidfile = self.workdir / f"redis-{self.port}.pid"

    def answers(self) -> bool:
        """One PING on a plain socket: redis-py's own retries would turn "down" into seconds."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--daemonize",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--pidfile",
                str(self.pidfile),
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / f"redis-{self.port}.log"),
            ],
            check=True,
        )
        wait_until(self.answers, 10, interval=0.05, message=f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Shut down without saving: everything it held is lost, as in a crash."""
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as conn:
                conn.sendall(b"SHUTDOWN NOSAVE\r\n")
                conn.recv(16)  # it closes the connection as it goes
        except OSError:
            pass
        wait_until(lambda: not self.answers(), 10, interval=0.05, message="redis-server to stop")

    def snapshot(self) -> None:
        """SAVE: write what it holds now to its dump file, which the next start loads."""
        with socket.create_connection((self.host, self.port), timeout=5) as conn:
            conn.sendall(b"SAVE\r\n")
            assert conn.recv(16).startswith(b"+OK")

    def restart(self, down_for: float = 0.5, from_snapshot: bool = False) -> None:
        """Stop and start again: empty, or loading the last `snapshot()` (a Redis restored from a
        backup or an RDB file: it comes back holding old records)."""
        self.stop()
        if not from_snapshot:
            (self.workdir / "dump.rdb").unlink(missing_ok=True)
        until = time.monotonic() + down_for
        wait_until(lambda: time.monotonic() >= until, down_for + 1, interval=0.02, message="Redis down")
        self.start()
