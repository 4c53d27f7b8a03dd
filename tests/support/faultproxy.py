"""A small HTTP fault proxy in front of one agent URL, for network faults without root.

Faults are per client: the control plane and the secondary's peer heartbeats carry User-Agents of
their own (`dms-control-plane/…`, `dms-agent-peer/…`), so a test can cut what the control plane
sees while the secondary's link to the primary stays direct, or the reverse. Modes:

- `pass`: forward the request and its answer;
- `black_hole`: the request never arrives and nothing answers (a cut link);
- `drop_answer`: the request arrives, its answer is lost (one-way loss);
- `delay`: every request waits `DELAY_S` before it is forwarded (a delayed link: a client with a
  shorter timeout gives up, and the request still arrives after it did);
- `slow`: like `pass`, but every `/v1/data/...` request waits `SLOW_S` first (a slow link, so
  that a test can act while a sync is surely under way);
- `corrupt`: like `pass`, but one byte in the middle of every non-empty `GET /v1/data/files/...`
  answer body is flipped; with `corrupt_times = N` only the first N answers of each path are
  (`corrupted` counts them per path). Other requests pass unchanged.
"""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from aiohttp import web

from tests.support.agents import free_port

MODES = ("pass", "black_hole", "drop_answer", "delay", "slow", "corrupt")
SLOW_S = 1.0
DELAY_S = 2.5  # over the control plane's 2 s role-command timeout
HOLD_S = 30.0  # how long a dropped exchange is held open; the client gives up long before


def client_kind(user_agent: str) -> str:
    if user_agent.startswith("dms-control-plane"):
        return "control"
    if user_agent.startswith("dms-agent-peer"):
        return "peer"
    return "other"


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.modes = {"control": "pass", "peer": "pass", "other": "pass"}
        self.corrupt_times: int | None = None  # None: every answer (mode `corrupt`)
        self.corrupted: dict[str, int] = {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"faultproxy-{self.port}")

    def set(self, kind: str, mode: str) -> None:
        assert kind in self.modes and mode in MODES, (kind, mode)
        self.modes[kind] = mode

    def start(self) -> FaultProxy:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.session = aiohttp.ClientSession(loop=self.loop)
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.session.close())
            self.loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = self.modes[client_kind(request.headers.get("User-Agent", ""))]
        if mode == "black_hole":
            await asyncio.sleep(HOLD_S)
            raise web.HTTPGatewayTimeout()
        if mode == "slow" and request.path.startswith("/v1/data/"):
            await asyncio.sleep(SLOW_S)
        if mode == "delay":
            await asyncio.sleep(DELAY_S)
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type", "x-sha256")
        }
        try:
            async with self.session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as upstream:
                payload = await upstream.read()
                status, content_type = upstream.status, upstream.headers.get("Content-Type", "application/json")
        except (aiohttp.ClientError, TimeoutError):
            # The proxy stands for the network, not a gateway: with the agent gone nothing answers
            # (a 502 would be an answer, and a dead appliance behind it would never be missed).
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPBadGateway() from None
        if self.modes[client_kind(request.headers.get("User-Agent", ""))] == "drop_answer":
            await asyncio.sleep(HOLD_S)
            raise web.HTTPGatewayTimeout()
        if mode == "corrupt" and request.method == "GET" and status == 200:
            payload = self._corrupt(request.path, payload)
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})

    def _corrupt(self, path: str, payload: bytes) -> bytes:
        if not path.startswith("/v1/data/files/") or not payload:
            return payload
        done = self.corrupted.get(path, 0)
        if self.corrupt_times is not None and done >= self.corrupt_times:
            return payload
        self.corrupted[path] = done + 1
        middle = len(payload) // 2
        return payload[:middle] + bytes([payload[middle] ^ 0xFF]) + payload[middle + 1 :]
