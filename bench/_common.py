"""What every benchmark needs: its own PostgreSQL database and Redis database, and real control-plane
processes on loopback, all stopped at exit.

Defaults: database `bench_dms` (created and migrated when missing), Redis DB 14 (flushed at start).
Override with BENCH_DATABASE_URL / BENCH_REDIS_URL. Redis DB 0 (demo) and 15 (tests) are refused.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_dms")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
if urlsplit(REDIS_URL).path.strip("/") in ("", "0", "15"):
    raise SystemExit(f"{REDIS_URL}: Redis DB 0 and 15 belong to the demo and the tests; use another one")

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="dms_admin.settings",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    pythonpath = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pythonpath if pythonpath else "")
    env.update(extra)
    return env


def prepare(flush_redis: bool = True) -> None:
    """Create and migrate the bench database if needed, set up Django here, flush the bench Redis."""
    parts = urlsplit(DATABASE_URL)
    name = parts.path.strip("/")
    host, port, user = parts.hostname or "127.0.0.1", str(parts.port or 5432), parts.username or "postgres"
    listed = subprocess.run(
        ["psql", "-h", host, "-p", port, "-U", user, "-lqt"], capture_output=True, text=True, check=True
    ).stdout
    if name not in {line.split("|")[0].strip() for line in listed.splitlines()}:
        subprocess.run(["createdb", "-h", host, "-p", port, "-U", user, name], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=process_env(), check=True)
    os.environ.update({k: v for k, v in process_env().items() if k != "PYTHONPATH"})
    import django

    django.setup()
    if flush_redis:
        from dms_admin.redis import redis_client

        redis_client().flushdb()


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


_started: list[Proc] = []


class Proc:
    """A subprocess in its own session (so its children die with it), output in a log file."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.args = args
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = env or process_env()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _started.append(self)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10) -> None:
        if not self.alive:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 60) -> Proc:
        def seen():
            if not self.alive:
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            return text in self.log()

        wait_until(seen, timeout, 0.1, f"{text!r} in {self.log_path}")
        return self


def stop_all() -> None:
    for proc in reversed(_started):
        proc.stop()


atexit.register(stop_all)


def log_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"dms-{prefix}-"))


def celery_worker(
    logs: Path, queues: str, name: str, concurrency: int = 1, extra: list[str] | None = None, **env: str
) -> Proc:
    args = [
        sys.executable, "-m", "celery", "-A", "dms_admin", "worker", "-Q", queues, "-n", f"{name}@%h",
        "-c", str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
        *(extra or []),
    ]  # fmt: skip
    return Proc(name, args, logs, process_env(**env)).start().wait_for_log("ready.")


def celery_beat(logs: Path, **env: str) -> Proc:
    args = [sys.executable, "-m", "celery", "-A", "dms_admin", "beat", "-l", "INFO", "-s", str(logs / "beat-schedule")]
    return Proc("beat", args, logs, process_env(**env)).start().wait_for_log("beat: Starting")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def load_note() -> str:
    """The 1-minute load average and the CPU count: other work on the box skews every figure."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
