"""`python -m agent.simulate`: many virtual appliances in one process, for benchmarks.

Appliance i answers under `/a/<i>/v1/...` (heartbeat, primary, role, inventory) with the same
`AgentCore` and handlers as the real agent, but with state in memory, no checks, no peer loop and
no data directory. `--primaries` configures every appliance as primary at epoch 1 so a heartbeat
client's grants are accepted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import uvloop
from aiohttp import web

from agent.appliance import OPEN_PATHS, RESOLVE, Appliance, add_control_routes, stamp_receipt
from agent.clock import mono
from agent.core import AgentCore
from agent.inventory import Inventory
from agent.webutil import ApiError, bearer_auth, json_errors

log = logging.getLogger("agent.simulate")


def make_appliances(
    count: int,
    *,
    primaries: bool,
    clock_offset: float = 0.0,
    lease_s: float = 4.0,
    max_grant_delay: float = 0.25,
    max_clock_skew: float = 0.1,
) -> list[Appliance]:
    quiet = logging.getLogger("agent.simulate.core")
    quiet.setLevel(logging.WARNING)  # 10,000 appliances logging each refusal would drown the box
    appliances = []
    for i in range(count):
        core = AgentCore(mono=mono, wall=lambda: time.time() + clock_offset, name=f"sim-{i}", logger=quiet)
        if primaries:
            core.apply_role(
                {
                    "role": "primary",
                    "epoch": 1,
                    "seq": 1,
                    "lease_s": lease_s,
                    "interval_s": lease_s / 2,
                    "max_grant_delay": max_grant_delay,
                    "max_clock_skew": max_clock_skew,
                }
            )
        appliances.append(Appliance(core, Inventory(None)))
    return appliances


def _is_open(path: str) -> bool:
    """`/a/<i>/v1/primary` and the other open paths of one virtual appliance."""
    parts = path.split("/", 3)  # "", "a", "<i>", "v1/..."
    return len(parts) == 4 and parts[1] == "a" and "/" + parts[3] in OPEN_PATHS


def build_app(appliances: list[Appliance], token: str) -> web.Application:
    app = web.Application(middlewares=[stamp_receipt, json_errors, bearer_auth(token, _is_open)])

    def resolve(request: web.Request) -> Appliance:
        index = request.match_info["index"]
        if not index.isdigit() or int(index) >= len(appliances):
            raise ApiError(404, f"no virtual appliance {index}")
        return appliances[int(index)]

    app[RESOLVE] = resolve
    add_control_routes(app, prefix="/a/{index}")
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.simulate", description=__doc__)
    p.add_argument("--count", type=int, default=1000, help="number of virtual appliances")
    p.add_argument("--host", default="127.0.0.1", help="listen host (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="listen port")
    p.add_argument("--token", required=True, help="bearer token of every virtual appliance")
    p.add_argument(
        "--primaries", action="store_true", help="configure every appliance as primary at epoch 1, seq 1 at start"
    )
    p.add_argument("--lease-s", type=float, default=4.0, help="lease_s set by --primaries")
    p.add_argument("--max-grant-delay", type=float, default=0.25, help="max_grant_delay set by --primaries")
    p.add_argument("--max-clock-skew", type=float, default=0.1, help="max_clock_skew set by --primaries")
    p.add_argument("--clock-offset", type=float, default=0.0, help="seconds added to every appliance's wall clock")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    appliances = make_appliances(
        args.count,
        primaries=args.primaries,
        clock_offset=args.clock_offset,
        lease_s=args.lease_s,
        max_grant_delay=args.max_grant_delay,
        max_clock_skew=args.max_clock_skew,
    )
    log.info(
        "serving %d virtual appliances on %s:%d under /a/<i>/v1/...%s",
        args.count,
        args.host,
        args.port,
        " (all primary at epoch 1)" if args.primaries else "",
    )
    web.run_app(
        build_app(appliances, args.token),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
