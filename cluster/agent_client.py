"""The control plane's client for dms-agent (DESIGN §8), on aiohttp.

One `AgentClient` per event loop; each call has its own deadline. Plain HTTP is for loopback only
(tests, the demo); anywhere else agents are reached over HTTPS verified against `AGENT_CA_FILE`
(DESIGN §4.7).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from django.conf import settings

USER_AGENT = "dms-control-plane/1"


@dataclass
class AgentAnswer:
    """What one call got: `status` 0 means no answer at all (refused, timed out, reset)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    refused: bool = False  # the connection was refused: the request provably never arrived
    sent_wall: float = 0.0
    received_wall: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def answered(self) -> bool:
        return self.status != 0

    @property
    def rtt(self) -> float:
        return max(0.0, self.received_wall - self.sent_wall)


def ssl_context() -> ssl.SSLContext | bool:
    if settings.AGENT_CA_FILE:
        return ssl.create_default_context(cafile=settings.AGENT_CA_FILE)
    return True  # the system's CAs


class InsecureAgentURL(ValueError):
    pass


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise InsecureAgentURL(f"{url}: plain HTTP is allowed on loopback only; use https://")


class AgentClient:
    """Role commands, failover steps, replication and switchover calls (heartbeat probes go through
    `cluster.heartbeat.high_rate_client.ProbeClient`)."""

    def __init__(self, *, connection_limit: int = 1000):
        connector = aiohttp.TCPConnector(limit=connection_limit, ssl=ssl_context(), force_close=False)
        self.session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def call(
        self, method: str, base_url: str, path: str, token: str, body: Any = None, timeout: float = 2.0
    ) -> AgentAnswer:
        url = base_url.rstrip("/") + path
        sent = time.time()
        try:
            check_url(url)
            async with self.session.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = {}
                return AgentAnswer(
                    response.status, data if isinstance(data, dict) else {}, "", False, sent, time.time()
                )
        except aiohttp.ClientConnectorError as error:
            refused = isinstance(error.os_error, ConnectionRefusedError)
            return AgentAnswer(0, {}, f"cannot connect: {error.os_error}", refused, sent, time.time())
        except TimeoutError:
            return AgentAnswer(0, {}, f"no answer within {timeout:g} s", False, sent, time.time())
        except (aiohttp.ClientError, InsecureAgentURL, OSError) as error:
            return AgentAnswer(0, {}, str(error) or error.__class__.__name__, False, sent, time.time())


def call_once(method: str, base_url: str, path: str, token: str, body: Any = None, timeout: float = 2.0) -> AgentAnswer:
    """One call from synchronous code (Celery tasks, views), on a loop of its own."""

    async def run() -> AgentAnswer:
        async with AgentClient(connection_limit=4) as client:
            return await client.call(method, base_url, path, token, body, timeout)

    return asyncio.run(run())
