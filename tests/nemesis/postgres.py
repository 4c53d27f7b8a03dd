"""A PostgreSQL cluster of the campaign's own (Debian's `pg_createcluster`, port 5441), so that the
nemesis can stop and start it: the machine's PostgreSQL serves every other session and must not be
touched. Made at start when missing, dropped at the end with everything else."""

from __future__ import annotations

import os
import subprocess
import time

CLUSTER = "dmsnemesis"
PORT = 5441
DATABASE = "nemesis"
URL = f"postgres://postgres@127.0.0.1:{PORT}/{DATABASE}"


def version() -> str:
    return sorted(os.listdir("/etc/postgresql"), key=lambda v: int(v.split(".")[0]))[-1]


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


def ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(PORT), "-q"]).returncode == 0


def wait_ready(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the campaign's PostgreSQL on port {PORT} did not come up within {timeout:.0f}s")
        time.sleep(0.1)


def create() -> str:
    """The cluster started, with a fresh empty database; its URL."""
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    if not any(line.split()[:2] == [version(), CLUSTER] for line in listed.splitlines()):
        _run("pg_createcluster", version(), CLUSTER, "-p", str(PORT), "--", "--auth=trust")
    subprocess.run(["pg_ctlcluster", version(), CLUSTER, "start"], capture_output=True)
    wait_ready(30)
    psql = ["psql", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", "-d", "postgres", "-q", "-c"]
    _run(*psql, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    _run(*psql, f"CREATE DATABASE {DATABASE}")
    return URL


def stop(mode: str) -> None:
    """`fast` (a clean shutdown) or `immediate` (a crash: no checkpoint, recovery at the next start)."""
    _run("pg_ctlcluster", version(), CLUSTER, "stop", "-m", mode)


def start() -> None:
    _run("pg_ctlcluster", version(), CLUSTER, "start")
    wait_ready(30)


def drop() -> None:
    subprocess.run(["pg_dropcluster", "--stop", version(), CLUSTER], capture_output=True)
