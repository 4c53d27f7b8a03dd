"""Real control-plane processes for integration tests: Celery workers, beat and the web app,
started against the test database (pytest-django's `test_…`) and the test Redis.

Tests that use these need `transactional_db` (or `django_db(transaction=True)`): the processes only
see committed rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.support.agents import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
# The session control plane's logs: one folder per pytest-xdist worker (each runs its own).
CONTROL_PLANE_LOGS = REPO_ROOT / "test-artifacts" / "control-plane" / os.environ.get("PYTEST_XDIST_WORKER", "")


def log_tail(name: str, lines: int = 30) -> str:
    """The last `lines` lines of a session control-plane process's log (`default`, `beat`, …), to
    put in a failure message: what that process was doing when the test gave up."""
    path = CONTROL_PLANE_LOGS / f"{name}.log"
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def test_database_url() -> str:
    """The URL of the database the test run is using right now (pytest-django's test database)."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="dms_admin.settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        PYTHONUNBUFFERED="1",
        FAILOVER_TEST_PAUSES="1",  # the per-cluster pause key (tests/failover/test_worker_faults.py)
    )
    env.update(extra)
    return env


class ControlProcess:
    """One subprocess of the control plane, its output in a log file for post-mortems."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.args = args
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = env or process_env()
        self.proc: subprocess.Popen | None = None

    def start(self) -> ControlProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.args, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (a Celery worker's children included)."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        if not self.alive:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.log(), timeout, interval=0.1, message=f"{text!r} in {self.name}.log")


def celery_worker(
    log_dir: Path, queues: str, name: str, concurrency: int = 1, pool: str = "prefork", **env: str
) -> ControlProcess:
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "dms_admin",
        "worker",
        "-Q",
        queues,
        "-n",
        f"{name}@%h",
        "-c",
        str(concurrency),
        "-P",
        pool,
        "--without-gossip",
        "--without-mingle",
        "-l",
        "INFO",
    ]
    worker = ControlProcess(name, args, log_dir, process_env(**env)).start()
    worker.wait_for_log("ready.", timeout=60)
    return worker


def celery_beat(log_dir: Path, **env: str) -> ControlProcess:
    schedule = Path(log_dir) / "beat-schedule"
    args = [sys.executable, "-m", "celery", "-A", "dms_admin", "beat", "-l", "INFO", "-s", str(schedule)]
    beat = ControlProcess("beat", args, log_dir, process_env(**env)).start()
    beat.wait_for_log("beat: Starting", timeout=60)
    return beat


def web_server(log_dir: Path, **env: str) -> tuple[ControlProcess, str]:
    """The web app on a free loopback port (Django's server, no autoreload); returns it and its URL."""
    port = free_port()
    args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    web = ControlProcess("web", args, log_dir, process_env(**env)).start()
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/api/v1/health/", timeout=60)
    return web, url


def _wait_http(url: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    def answers() -> bool:
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    deadline = time.monotonic() + timeout
    wait_until(answers, max(0.1, deadline - time.monotonic()), interval=0.1, message=f"{url} to answer")
