"""`python -m agent`: wire the core, the stores, the checks and the peer loop into one server."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
import time

from aiohttp import web

from agent import data, sync
from agent.appliance import (
    OPEN_PATHS,
    RESOLVE,
    Appliance,
    add_control_routes,
    add_intranet_routes,
    handle_heartbeat,
    stamp_receipt,
)
from agent.checks import CheckRunner
from agent.clock import mono
from agent.config import AgentConfig, ConfigError, load_config
from agent.core import AgentCore
from agent.hooks import RoleChangeHook
from agent.inventory import Inventory
from agent.peer import PeerHeartbeater
from agent.servinglog import FILE_NAME as SERVING_LOG
from agent.servinglog import ServingLog
from agent.storage import StateStore, read_json
from agent.webutil import bearer_auth, json_errors

log = logging.getLogger("agent")

CANDIDACY_TICK_S = 0.1  # a candidacy past its deadline reverts (and says so) within this


class Agent:
    """One running agent: everything `python -m agent` starts, in start/stop order."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        offset = config.clock_offset
        self.store = StateStore(config.state_dir)
        serving_log_path = config.state_dir / SERVING_LOG
        existed = serving_log_path.exists()
        self.serving_log = ServingLog(serving_log_path)
        if existed:
            # A restarted agent holds no lease: cap whatever the old process had on record.
            self.serving_log({"stop": mono()})
        self.hook = (
            RoleChangeHook(config.on_role_change, config.on_role_change_timeout) if config.on_role_change else None
        )
        self.core = AgentCore(
            mono=mono,
            wall=lambda: time.time() + offset,
            state=self.store.load(),
            persist=self.store.save,
            serving_log=self.serving_log,
            on_role_change=self.hook,
            name=config.name,
            logger=log,
        )
        seed = read_json(config.inventory) if config.inventory else None
        self.inventory = Inventory(config.state_dir / "inventory.json", seed)
        self.checks = CheckRunner(config.checks)
        self.appliance = Appliance(self.core, self.inventory, self.checks)
        self.data = data.DataStore(config.data_dir, int(config.max_body_mb * 1024 * 1024))
        self.peer = PeerHeartbeater(self.core, self._peer_ssl())
        # Sync sources are the peer (the primary): the same CA verifies them.
        self.sync = sync.SyncManager(self.core, self.data, config.state_dir, self._peer_ssl())
        self.app = self.build_app()
        self.runners: list[web.AppRunner] = []
        self._ticker: asyncio.Task[None] | None = None

    def _peer_ssl(self) -> ssl.SSLContext | None:
        if self.config.peer_ca is None:
            return None
        return ssl.create_default_context(cafile=str(self.config.peer_ca))

    def _server_ssl(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.config.tls_cert), str(self.config.tls_key))
        return ctx

    def build_app(self) -> web.Application:
        """The heartbeat network's listener: every call with the control token; with the peer
        credential only grants and the reads of a peer syncing from this agent."""
        peer_calls = {handle_heartbeat, self.data.handle_manifest, self.data.handle_get, self.data.handle_batch}
        auth = bearer_auth(
            (self.config.token, self.config.next_token or ""),
            lambda p: p in OPEN_PATHS,
            peer_may=lambda request: request.match_info.handler in peer_calls,
        )
        app = web.Application(
            middlewares=[stamp_receipt, json_errors, auth], client_max_size=1024 * 1024
        )  # JSON bodies; file PUTs stream past this limit
        app[RESOLVE] = lambda request: self.appliance
        add_control_routes(app)
        data.add_routes(app, self.data)
        sync.add_routes(app, self.sync)
        return app

    def build_intranet_app(self) -> web.Application:
        """The intranet listener, which users' networks reach: the open paths and the control
        plane's fallback heartbeat only. Every other path is 404 there, token or not."""
        # Only the heartbeat needs the token here (the control token: peers heartbeat on the
        # heartbeat network); any other path is open or not routed at all.
        app = web.Application(
            middlewares=[
                stamp_receipt,
                json_errors,
                bearer_auth((self.config.token, self.config.next_token or ""), lambda p: p != "/v1/heartbeat"),
            ],
            client_max_size=64 * 1024,
        )
        app[RESOLVE] = lambda request: self.appliance
        add_intranet_routes(app)
        return app

    async def start(self) -> None:
        ctx = self._server_ssl()
        listeners = [(self.app, self.config.heartbeat_listen)]
        if self.config.intranet_listen is not None:
            listeners.append((self.build_intranet_app(), self.config.intranet_listen))
        for app, listen in listeners:
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            self.runners.append(runner)
            await web.TCPSite(runner, listen.host, listen.port, ssl_context=ctx, reuse_address=True).start()
        if self.config.plain_http_exposed():
            log.warning(
                "%s: --insecure: plain HTTP on %s, reachable beyond this host",
                self.config.name,
                ", ".join(map(str, self.config.plain_http_exposed())),
            )
        self.checks.start()
        self.peer.start()
        self._ticker = asyncio.create_task(self._tick())
        log.info(
            "%s: listening on %s%s (%s), role %s epoch %d seq %d",
            self.config.name,
            self.config.heartbeat_listen,
            f" and {self.config.intranet_listen}" if self.config.intranet_listen else "",
            "https" if ctx else "http",
            self.core.role,
            self.core.epoch,
            self.core.seq,
        )

    async def _tick(self) -> None:
        while True:
            self.core.expire()
            await asyncio.sleep(CANDIDACY_TICK_S)

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        await self.sync.stop()
        await self.peer.stop()
        await self.checks.stop()
        for runner in self.runners:
            await runner.cleanup()
        if self.hook:  # after the listeners: no role command can start another one
            await self.hook.stop()
        self.serving_log.close()


async def serve(config: AgentConfig) -> None:
    agent = Agent(config)
    await agent.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    log.info("%s: shutting down", config.name)
    await agent.stop()


def main(argv: list[str] | None = None) -> int:
    try:
        config, level = load_config(argv)
    except ConfigError as exc:
        print(f"dms-agent: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(config))
    except OSError as exc:  # e.g. the port is taken: one line, not a traceback
        print(f"dms-agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
