"""`--on-role-change CMD`: tell the appliance's own application that its role changed.

After a change of role or epoch is on disk, the agent runs `CMD ROLE EPOCH CLUSTER` (like
Patroni's `on_role_change` callback or keepalived's `notify` script). CMD is split like a shell
command line (quotes respected, no other shell features); the three arguments are appended. The
hook runs in the background, in its own process group, without the agent's token in its
environment: it never delays an answer or the lease logic, and its outcome never changes the
role. One hook runs at a time; a newer change kills a hook still running (its news is stale) and
starts its own; a hook running past the timeout, or when the agent stops, is killed. Failures and
timeouts are logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex

from agent.checks import kill_group

log = logging.getLogger("agent.hooks")

DEFAULT_TIMEOUT_S = 30.0


class RoleChangeHook:
    def __init__(self, command: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.argv = shlex.split(command)
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None

    def __call__(self, role: str, epoch: int, cluster: str) -> None:
        """Start the hook for this change and return at once (called from the event loop)."""
        previous = self._task
        self._task = asyncio.get_running_loop().create_task(self._run(previous, [role, str(epoch), cluster]))

    async def stop(self) -> None:
        """Kill a hook still running (the agent is stopping)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, previous: asyncio.Task[None] | None, args: list[str]) -> None:
        if previous is not None and not previous.done():
            previous.cancel()
            await asyncio.gather(previous, return_exceptions=True)
        what = shlex.join([*self.argv, *args])
        env = {k: v for k, v in os.environ.items() if k != "DMS_AGENT_TOKEN"}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, *args, stdin=asyncio.subprocess.DEVNULL, env=env, start_new_session=True
            )
        except OSError as exc:
            log.warning("role-change hook %s could not start: %s", what, exc)
            return
        log.info("role-change hook %s started (pid %d)", what, proc.pid)
        try:
            rc = await asyncio.wait_for(proc.wait(), self.timeout)
        except TimeoutError:
            kill_group(proc.pid)
            await proc.wait()
            log.warning("role-change hook %s timed out after %ss: killed", what, self.timeout)
            return
        except asyncio.CancelledError:
            kill_group(proc.pid)
            await proc.wait()
            log.warning("role-change hook %s killed: a newer role change (or a shutdown) came first", what)
            raise
        if rc == 0:
            log.info("role-change hook %s done", what)
        else:
            how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
            log.warning("role-change hook %s failed: %s", what, how)
