"""The campaign's processes: Redis, the Celery workers and beat, and one dms-agent per appliance in
its network namespace, all as `Managed` processes the nemesis can kill, pause and restart.

Each process runs in a session of its own, so that a signal reaches a whole Celery worker (its pool
children included). `wanted` says whether the process should be running: the supervisor restarts
one that died on its own, as systemd's Restart= would, and leaves alone one that a fault holds down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.nemesis.network import Host

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_PORT = 8443
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
WORKERS = (("heartbeat", 2), ("failover", 2), ("default", 1), ("replication", 1))  # queue (and name), concurrency


class Managed:
    # libfaketime shifts CLOCK_MONOTONIC as well unless told not to; a shift of a process's own
    # monotonic clock is harmless when only that process compares its readings. Not told by
    # default: libfaketime 0.9.10 fails every time.sleep() with EINVAL under DONT_FAKE_MONOTONIC.
    true_monotonic = False

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.clock_offset = 0.0  # libfaketime offset of the wall clock, seconds (0: none)
        self.proc: subprocess.Popen | None = None
        self.wanted = False
        self.paused = False
        self._log_start = 0

    def start(self) -> Managed:
        env = dict(self.env)
        if self.clock_offset:
            env.update(LD_PRELOAD=LIBFAKETIME, FAKETIME=f"{self.clock_offset:+.3f}")
            if self.true_monotonic:
                env["DONT_FAKE_MONOTONIC"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            offset = f" (FAKETIME {self.clock_offset:+.3f})" if self.clock_offset else ""
            log.write(f"\n===== {time.strftime('%H:%M:%S')} start{offset}\n".encode())
            log.flush()
            self._log_start = log.tell()
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.wanted, self.paused = True, False
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _signal(self, sig: int) -> None:
        if self.alive:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the whole group: the crash (nothing is flushed or cleaned up)."""
        self.wanted = False
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.paused = False

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout: float = 10) -> None:
        self.wanted = False
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""


def control_env(database_url: str, redis_url: str, ca_file: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dms_admin.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "AGENT_CA_FILE": str(ca_file),
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "PYTHONUNBUFFERED": "1",
    }


def redis_server(port: int, directory: Path, log_dir: Path) -> Managed:
    """A Redis of the campaign's own: no automatic snapshots, so that a restart comes back empty
    unless a fault saved one (`SAVE`) on purpose."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(directory), "--dbfilename", "dump.rdb", "--daemonize", "no",
    ]  # fmt: skip
    return Managed("redis", argv, dict(os.environ), log_dir / "redis.log")


def celery_worker(queue: str, concurrency: int, env: dict[str, str], log_dir: Path) -> Managed:
    argv = [
        sys.executable, "-m", "celery", "-A", "dms_admin", "worker", "-Q", queue, "-n", f"nemesis-{queue}@%h",
        "-c", str(concurrency), "--without-gossip", "--without-mingle", "-l", "INFO",
    ]  # fmt: skip
    return Managed(queue, argv, env, log_dir / f"worker-{queue}.log")


def celery_beat(env: dict[str, str], log_dir: Path) -> Managed:
    schedule = log_dir / "beat-schedule"
    argv = [sys.executable, "-m", "celery", "-A", "dms_admin", "beat", "-l", "INFO", "-s", str(schedule)]
    return Managed("beat", argv, env, log_dir / "beat.log")


def control_ready(process: Managed) -> bool:
    marker = "beat: Starting" if process.name == "beat" else "ready."
    return marker in process.log_since_start()


class Agent(Managed):
    """A dms-agent in its appliance's namespace, HTTPS on both networks at port 8443."""

    # Its serving log is compared with the other agents' on CLOCK_MONOTONIC; it never sleeps with
    # time.sleep() (asyncio waits in epoll), so libfaketime's EINVAL does not reach it.
    true_monotonic = True

    def __init__(self, name: str, host: Host, base_dir: Path, token: str, tls: tuple[Path, Path], ca: Path):
        self.host = host
        self.token = token
        self.base_dir = base_dir
        self.state_dir = base_dir / "state"
        self.data_dir = base_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "ip", "netns", "exec", host.netns, sys.executable, "-m", "agent", "--name", name,
            "--heartbeat-listen", f"{host.address('hb')}:{AGENT_PORT}",
            "--intranet-listen", f"{host.address('in')}:{AGENT_PORT}",
            "--data-dir", str(self.data_dir), "--state-dir", str(self.state_dir),
            "--tls-cert", str(tls[0]), "--tls-key", str(tls[1]), "--peer-ca", str(ca),
        ]  # fmt: skip
        env = {**os.environ, "DMS_AGENT_TOKEN": token, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
        super().__init__(name, argv, env, base_dir / "agent.log")

    def url(self, network: str) -> str:
        return f"https://{self.host.address(network)}:{AGENT_PORT}"
