"""The run folder `run/` (or `$DMS_RUN_DIR`): where the demo keeps everything, and what it reads back.

Its pid files name the processes a run started; a pid counts only while it runs in this checkout or
the run folder (`ours`), so a pid reused by someone else is never signalled.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("DMS_RUN_DIR") or ROOT / "run").resolve()
LOGS = RUN / "logs"
PIDS = RUN / "pids"
MAIL = RUN / "mail"
TRAP_LOG = RUN / "traps.log"
SPEC = RUN / "demo.json"  # the agents, written by seed_demo
SQLITE_URL = f"sqlite:///{RUN / 'dms.sqlite3'}"  # the settings' default when RUN is ROOT/run


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def demo_cmd(args: str) -> str:
    """A `demo` command to print: the venv's python (relative when it is ours), and the run folder
    when it is not the default, so that the command can be pasted as printed."""
    py = rel(Path(sys.executable)) if Path(sys.executable).is_relative_to(ROOT) else sys.executable
    folder = f"DMS_RUN_DIR={shlex.quote(str(RUN))} " if RUN != ROOT / "run" else ""
    return f"{folder}{py} -m demo {args}"


def pid_file(name: str) -> Path:
    return PIDS / f"{name}.pid"


def ours(pid: int) -> bool:
    """`pid` is alive, not a zombie, and runs in this checkout (so a reused pid is never killed)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        cwd = Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
        # The demo's redis-server runs in run/redis, wherever DMS_RUN_DIR puts the run folder.
        return any(cwd == top or top in cwd.parents for top in (ROOT, RUN))
    except (OSError, IndexError):
        return False


def read_pid(name: str) -> int | None:
    try:
        pid = int(pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if ours(pid) else None


def log_tail(name: str, lines: int = 15) -> str:
    try:
        return "\n".join((LOGS / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def load_agents() -> dict[str, dict]:
    return json.loads(SPEC.read_text())["agents"]
