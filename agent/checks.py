"""Periodic shell checks: critical ones are "services" (a failure stops serving and may cause a
failover), non-critical ones are "components" (reported, never a failover; DESIGN §4.3)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("agent.checks")


@dataclass
class CheckSpec:
    name: str
    command: str
    critical: bool = True
    interval: float = 1.0
    timeout: float = 5.0


@dataclass
class CheckState:
    spec: CheckSpec
    ok: bool = False  # not passed yet: a critical check that never ran does not pass
    ran: bool = False
    consecutive_failures: int = 0
    last_detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class CheckRunner:
    """Runs every check in its own task; the answers read the latest results."""

    def __init__(self, specs: list[CheckSpec]) -> None:
        self.states = [CheckState(spec) for spec in specs]
        self._tasks: list[asyncio.Task[None]] = []

    def critical_failing(self) -> list[str]:
        """Names of the critical checks not passing (one that has not run yet does not pass)."""
        return [s.spec.name for s in self.states if s.spec.critical and not s.ok]

    def services(self) -> list[dict[str, Any]]:
        return [
            {"name": s.spec.name, "critical": True, "ok": s.ok, "consecutive_failures": s.consecutive_failures}
            for s in self.states
            if s.spec.critical
        ]

    def components(self) -> list[dict[str, Any]]:
        return [{"name": s.spec.name, "ok": s.ok} for s in self.states if not s.spec.critical]

    def start(self) -> None:
        for state in self.states:
            self._tasks.append(asyncio.create_task(self._loop(state)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, state: CheckState) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            ok, detail = await run_check(state.spec)
            if ok != state.ok or not state.ran:
                log.info(
                    "check %s (%s): %s%s",
                    state.spec.name,
                    "critical" if state.spec.critical else "component",
                    "ok" if ok else "FAILED",
                    f" ({detail})" if detail else "",
                )
            state.ran = True
            state.ok = ok
            state.last_detail = detail
            state.consecutive_failures = 0 if ok else state.consecutive_failures + 1
            await asyncio.sleep(max(0.0, state.spec.interval - (loop.time() - started)))


async def run_check(spec: CheckSpec) -> tuple[bool, str]:
    """Run the command in its own process group; a timeout kills the whole group."""
    try:
        proc = await asyncio.create_subprocess_shell(
            spec.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        return False, f"cannot start: {exc}"
    try:
        rc = await asyncio.wait_for(proc.wait(), spec.timeout)
    except TimeoutError:
        kill_group(proc.pid)
        await proc.wait()
        return False, f"timed out after {spec.timeout}s"
    except asyncio.CancelledError:
        kill_group(proc.pid)
        raise
    return rc == 0, "" if rc == 0 else f"exit status {rc}"


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
