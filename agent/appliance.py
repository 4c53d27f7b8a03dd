"""One appliance as the HTTP layer sees it, and the handlers of the control calls of DESIGN §8.

The handlers find their `Appliance` through `request.app[RESOLVE]`, so the same code serves the
real agent (one appliance per process) and the simulator (thousands under path prefixes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agent.checks import CheckRunner
from agent.clock import mono
from agent.core import AgentCore, require_object
from agent.health import primary_refusal, replica_refusal
from agent.inventory import Inventory
from agent.webutil import CREDENTIAL, PEER, Handler, json_body


class Appliance:
    def __init__(self, core: AgentCore, inventory: Inventory, checks: CheckRunner | None = None) -> None:
        self.core = core
        self.inventory = inventory
        self.checks = checks

    def critical_failing(self) -> list[str]:
        return self.checks.critical_failing() if self.checks else []

    def heartbeat_answer(self, core_answer: dict[str, Any]) -> dict[str, Any]:
        now = self.core.mono()
        return {
            **core_answer,
            "services": self.checks.services() if self.checks else [],
            "components": self.checks.components() if self.checks else [],
            "peer": self.core.peer_fields(now),
        }


Resolver = Callable[[web.Request], Appliance]
RESOLVE: web.AppKey[Resolver] = web.AppKey("resolve_appliance")
RECEIPT_MONO = "receipt_mono"


@web.middleware
async def stamp_receipt(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the receipt time (`agent.clock.mono`) before anything else (docs/protocol.md, rule 1)."""
    request[RECEIPT_MONO] = mono()
    return await handler(request)


def _appliance(request: web.Request) -> Appliance:
    return request.app[RESOLVE](request)


def _serving_answer(kind: str, name: str, refusal: str | None) -> web.Response:
    if refusal is None:
        return web.json_response({kind: True, "serving": True, "name": name})
    return web.json_response({kind: False, "serving": False, "reason": refusal, "name": name}, status=503)


async def handle_primary(request: web.Request) -> web.Response:
    """No auth: load balancers ask this (GET or HEAD). Computed afresh from the agent's clock."""
    appliance = _appliance(request)
    core = appliance.core
    return _serving_answer("primary", core.name, primary_refusal(core, appliance.critical_failing(), core.mono()))


async def handle_replica(request: web.Request) -> web.Response:
    """No auth: 200 on a healthy secondary (for a load balancer's read-only or standby pool)."""
    appliance = _appliance(request)
    core = appliance.core
    return _serving_answer("replica", core.name, replica_refusal(core, appliance.critical_failing(), core.mono()))


async def handle_health(request: web.Request) -> web.Response:
    """No auth: 200 while the agent runs, whatever its role; the role the application should take."""
    core = _appliance(request).core
    now = core.mono()
    return web.json_response(
        {
            "alive": True,
            "name": core.name,
            "role": core.role,
            "epoch": core.epoch,
            "seq": core.seq,
            "uptime_s": round(now - core.started_mono, 3),
        }
    )


async def handle_heartbeat(request: web.Request) -> web.Response:
    receipt = request.get(RECEIPT_MONO, mono())
    appliance = _appliance(request)
    core = appliance.core
    # Wall time at receipt, on the core's own (possibly offset) wall clock.
    receipt_wall = core.wall() - (core.mono() - receipt)
    body = await json_body(request)
    answer = core.heartbeat(body, receipt, receipt_wall, from_peer=request.get(CREDENTIAL) == PEER)
    return web.json_response(appliance.heartbeat_answer(answer))


async def handle_role(request: web.Request) -> web.Response:
    receipt = request.get(RECEIPT_MONO, mono())
    appliance = _appliance(request)
    core = appliance.core
    receipt_wall = core.wall() - (core.mono() - receipt)
    body = await json_body(request)
    return web.json_response(core.apply_role(body, receipt, receipt_wall))


async def handle_inventory_get(request: web.Request) -> web.Response:
    return web.json_response(_appliance(request).inventory.get())


async def handle_inventory_put(request: web.Request) -> web.Response:
    appliance = _appliance(request)
    body = require_object(await json_body(request))

    def order(epoch: int, seq: int) -> None:
        appliance.core.accept_seq(epoch, seq, "inventory")

    return web.json_response(appliance.inventory.install(body, order))


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]

# Readable by anyone who reaches a listener: load balancers and the appliance's application.
OPEN_PATHS = ("/v1/primary", "/v1/replica", "/v1/health")
OPEN_ROUTES: list[Route] = [
    (method, path, handler)
    for path, handler in zip(OPEN_PATHS, (handle_primary, handle_replica, handle_health), strict=True)
    for method in ("GET", "HEAD")
]
# With the token: grants. The one control call the intranet listener also serves, as the control
# plane's fallback when the heartbeat network does not answer. The peer credential may send it too
# (heartbeat network only).
HEARTBEAT_ROUTE: Route = ("POST", "/v1/heartbeat", handle_heartbeat)
# With the control token, on the heartbeat network only.
COMMAND_ROUTES: list[Route] = [
    ("POST", "/v1/role", handle_role),
    ("GET", "/v1/inventory", handle_inventory_get),
    ("PUT", "/v1/inventory", handle_inventory_put),
]


def add_control_routes(app: web.Application, prefix: str = "") -> None:
    """Everything of this module: the heartbeat network's listener (and the simulator)."""
    for method, path, handler in [*OPEN_ROUTES, HEARTBEAT_ROUTE, *COMMAND_ROUTES]:
        app.router.add_route(method, prefix + path, handler)


def add_intranet_routes(app: web.Application) -> None:
    """The intranet listener: the open paths and the fallback heartbeat; anything else is 404."""
    for method, path, handler in [*OPEN_ROUTES, HEARTBEAT_ROUTE]:
        app.router.add_route(method, path, handler)
