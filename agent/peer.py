"""The secondary's heartbeats to its primary (DESIGN §4a.2, §4.4).

Every `interval_s` slot the secondary sends `{epoch, lease_s, sent_at}` to the peer. The body is
produced as it is written on the established connection (TCP and TLS set up, headers out): only
then is the grant decided, stamped and recorded in the core, so the time spent connecting never
ages it. A slot without an answer stops granting (later probes carry `lease_s: 0`) until the peer
answers again. A candidate keeps probing with `lease_s: 0` so it can still report whether the old
primary answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator

import aiohttp

from agent.core import AgentCore

log = logging.getLogger("agent.peer")

IDLE_POLL_S = 0.05  # how soon a newly configured secondary starts heartbeating


class PeerHeartbeater:
    def __init__(self, core: AgentCore, peer_ssl: ssl.SSLContext | bool | None = None) -> None:
        self.core = core
        self.peer_ssl = peer_ssl
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(ssl=self.peer_ssl if self.peer_ssl is not None else True, limit=4)
        # A User-Agent of its own lets operators (and the fault proxy of the tests) tell peer
        # heartbeats from the control plane's.
        async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": "dms-agent-peer/1"}) as session:
            next_slot = loop.time()
            while True:
                peer_url = self.core.begin_grant()
                if peer_url is None:
                    await asyncio.sleep(IDLE_POLL_S)
                    next_slot = loop.time()
                    continue
                interval = self.core.settings.interval_s
                await self._send(session, peer_url, timeout=interval * 0.8)
                next_slot += interval
                now = loop.time()
                if next_slot < now:  # we overran: skip the missed slots rather than burst
                    next_slot = now
                await asyncio.sleep(next_slot - now)

    async def _send(self, session: aiohttp.ClientSession, peer_url: str, timeout: float) -> None:
        core = self.core

        async def body() -> AsyncIterator[bytes]:
            # aiohttp asks for the body only once the connection is up (sent chunked).
            yield json.dumps(core.grant_leaving(peer_url)).encode()

        headers = {"Authorization": f"Bearer {core.settings.peer_token or ''}", "Content-Type": "application/json"}
        try:
            async with session.post(
                peer_url.rstrip("/") + "/v1/heartbeat",
                data=body(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                await resp.read()
                if resp.status == 401:
                    log.warning("%s: peer refused our token (401)", core.name)
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            core.grant_failed(refused=refused)
        except (TimeoutError, aiohttp.ClientError, OSError):
            core.grant_failed(refused=False)
        else:
            core.grant_answered()
