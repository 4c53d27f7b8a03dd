"""The heartbeat worker's high-rate HTTP client (DESIGN §5): HTTP/1.1 keep-alive on asyncio
protocols (`http11.py`), for probes only.

A heartbeat worker process is meant to make thousands of probes a second, and aiohttp's client spent
about 160 µs of CPU per request here, two thirds of a probe; this one spends about 45 µs
(docs/decisions.md, docs/benchmarks.md). It does only what a probe needs: one JSON request per call
on a pooled connection, an answer framed by Content-Length, chunked or the connection's close, a
deadline per call, TLS verified as `AgentClient` verifies it. Every other call to an agent (roles,
failover steps, replication) goes through `AgentClient`, on aiohttp.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import resource
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..agent_client import USER_AGENT, AgentAnswer, InsecureAgentURL, check_url, ssl_context
from .http11 import BadAnswer, Connection

_encode_json = json.JSONEncoder(separators=(",", ":")).encode  # made once, not at every call


def _idle_in_all() -> int:
    """Idle connections kept in all: the process's open-file limit less room for everything else
    (768 under the common default of 1,024; the operator guide's heartbeat unit raises the limit so
    that each appliance keeps its connection)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65536 if soft == resource.RLIM_INFINITY else max(64, soft - 256)


# Connections kept open between calls: per agent address (many virtual appliances of a simulator
# share one), and in all.
IDLE_PER_ADDRESS = 256
IDLE_IN_ALL = _idle_in_all()


@dataclass(frozen=True)
class Target:
    key: tuple[str, str, int]  # (scheme, host, port): one pool per agent address
    host: str
    port: int
    tls: bool
    head: bytes  # the request line and fixed headers, up to the ones that vary per call


@functools.lru_cache(maxsize=65536)
def _target(method: str, base_url: str, path: str) -> Target:
    url = base_url.rstrip("/") + path
    check_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InsecureAgentURL(f"{url}: not an http:// or https:// address")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c in target for c in " \r\n"):
        raise InsecureAgentURL(f"{url}: spaces or line breaks in the path")
    host = parts.hostname
    host_header = (f"[{host}]" if ":" in host else host) + ("" if parts.port is None else f":{port}")
    head = f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
    return Target((parts.scheme, host, port), host, port, tls, head.encode("ascii"))


def _check_token(token: str) -> None:
    if "\r" in token or "\n" in token:
        raise InsecureAgentURL("the agent token holds a line break")


def _request(target: Target, token: str, body: Any) -> bytes:
    payload = b"" if body is None else _encode_json(body).encode()
    typed = b"Content-Type: application/json\r\n" if body is not None else b""
    return b"".join(
        (
            target.head,
            b"Authorization: Bearer ",
            token.encode("latin-1"),
            b"\r\n",
            typed,
            b"Content-Length: ",
            str(len(payload)).encode(),
            b"\r\n\r\n",
            payload,
        )
    )


class ProbeClient:
    """Same calls and answers as `AgentClient.call`; one per event loop."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, str, int], list[Connection]] = {}
        self.idle_count = 0
        self._tls: ssl.SSLContext | bool | None = None  # made at the first https call

    async def close(self) -> None:
        for connections in self.idle.values():
            for connection in connections:
                connection.close()
        self.idle.clear()
        self.idle_count = 0

    async def call(
        self, method: str, base_url: str, path: str, token: str, body: Any = None, timeout: float = 2.0
    ) -> AgentAnswer:
        """`body` may be an async callable: it is called once the connection is up, right before
        the request leaves (a grant is stamped then, not before a connect that may take a second
        when a SYN is lost), and called again if the request must be sent again."""
        sent = time.time()
        try:
            target = _target(method, base_url, path)
            _check_token(token)  # before anything is sent or even connected
            deadline = asyncio.get_running_loop().time() + timeout
            status, raw = await self._exchange(target, token, body, deadline)
        except TimeoutError:
            return AgentAnswer(0, {}, f"no answer within {timeout:g} s", False, sent, time.time())
        except OSError as error:
            refused = isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED
            prefix = "cannot connect: " if refused else ""
            return AgentAnswer(0, {}, f"{prefix}{error}" or type(error).__name__, refused, sent, time.time())
        except (BadAnswer, InsecureAgentURL) as error:
            return AgentAnswer(0, {}, str(error), False, sent, time.time())
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            decoded = {}
        return AgentAnswer(status, decoded if isinstance(decoded, dict) else {}, "", False, sent, time.time())

    async def _exchange(self, target: Target, token: str, body: Any, deadline: float) -> tuple[int, bytes]:
        for attempt in (1, 2):
            connection = self._idle(target.key)
            reused = connection is not None
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect(target)
            try:
                request = _request(target, token, await body() if callable(body) else body)
                status, body_bytes, reusable = await connection.exchange(request, deadline)
            except ConnectionResetError:
                connection.close()
                if reused and not connection.received and attempt == 1:
                    continue  # the agent closed an idle connection as the request left: once more, anew
                raise
            except BaseException:  # a deadline, a bad answer: never reuse a connection mid-exchange
                connection.close()
                raise
            if reusable:
                self._release(target.key, connection)
            else:
                connection.close()
            return status, body_bytes
        raise AssertionError("unreachable")

    async def _connect(self, target: Target) -> Connection:
        loop = asyncio.get_running_loop()
        if target.tls and self._tls is None:
            self._tls = ssl_context()
        tls = self._tls if target.tls else None
        _, connection = await loop.create_connection(
            Connection, target.host, target.port, ssl=tls, server_hostname=target.host if tls else None
        )
        return connection

    def _idle(self, key) -> Connection | None:
        connections = self.idle.get(key)
        while connections:
            connection = connections.pop()
            self.idle_count -= 1
            if not connection.closed:
                return connection
        return None

    def _release(self, key, connection: Connection) -> None:
        connections = self.idle.setdefault(key, [])
        if len(connections) < IDLE_PER_ADDRESS and self.idle_count < IDLE_IN_ALL:
            connections.append(connection)
            self.idle_count += 1
        else:
            connection.close()
