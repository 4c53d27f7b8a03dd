"""Starting, probing and signalling the demo's processes.

Every child is started in a session of its own (so Ctrl-C reaches only the orchestrator, which stops
the children in order), with its output appended to `run/logs/<name>.log` and its pid written to
`run/pids/<name>.pid`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

from demo.run_folder import LOGS, PIDS, ROOT, ours, pid_file

HOST = "127.0.0.1"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tcp_listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def udp_bound(port: int) -> bool:
    """Someone holds the UDP port (snmptrapd answers nothing, so binding it is the only probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return True
        return False


def http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def primary_serving(base_url: str) -> bool:
    """The agent's `GET /v1/primary` answers 200: primary at its epoch, holding a lease."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/v1/primary", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # every child is a session (and group) leader: pgid == pid
    except ProcessLookupError:
        pass


def start_process(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the orchestrator only; it stops children in order
        )
    pid_file(name).write_text(f"{proc.pid}\n")
    return proc


class Foreign:
    """A process this orchestrator did not start but must stop (an agent from `start-agent`)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode = None

    def poll(self):
        return None if ours(self.pid) else 0

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while ours(self.pid):
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return 0
