"""The demo appliances' applications: one small web page per appliance, where `/go/<cluster>/` lands.

    python -m demo.appliance_pages --spec run/demo.json --entry-url http://127.0.0.1:8000/go/

A real appliance runs its media application and the control plane's `/go/` sends users to it (the
server's `web_url`). The demo's appliances have no media application, so `make run`
(demo/services.py) starts this stand-in: for each agent of `demo.json` a page on its `app_port`
(seed_demo sets the server's `web_url` to it) that names the appliance, its cluster and the role
it holds now. It asks the appliance's own agent, as an application would: `GET /v1/health` (role
and epoch) and `GET /v1/primary` (serving or why not) on the agent's intranet listener, which need
no token. One process serves the four pages, one listener each; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import signal
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

HOST = "127.0.0.1"
AGENT_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Appliance:
    name: str
    cluster: str
    application: str
    app_port: int
    agent_url: str  # the intranet listener: the network the application and its users are on


@dataclass(frozen=True)
class Role:
    """What the page says: a headline (the role), a sentence, and a colour."""

    headline: str
    detail: str
    tone: str  # green, amber, grey, red


async def ask_agent(session: aiohttp.ClientSession, appliance: Appliance) -> Role:
    """The appliance's role as its agent reports it now; the agent not answering is said as such."""
    try:
        async with session.get(appliance.agent_url + "/v1/health") as answer:
            health = await answer.json()
        async with session.get(appliance.agent_url + "/v1/primary") as answer:
            primary = await answer.json()
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return Role("Agent not answering", "Its role is unknown, so this appliance serves no one.", "red")
    role, epoch = str(health.get("role", "unknown")), health.get("epoch")
    if primary.get("serving"):
        return Role("Primary", f"Serving users at epoch {epoch}.", "green")
    if role == "primary":
        return Role("Primary, not serving", f"{primary.get('reason', 'no reason given')} (epoch {epoch}).", "amber")
    if role == "secondary":
        return Role("Secondary", f"Standing by at epoch {epoch}: the primary serves users.", "grey")
    return Role(role.capitalize(), f"Not serving users ({primary.get('reason', role)}).", "grey")


STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f6f8; color: #1f2933; }
main { max-width: 40rem; margin: 4rem auto; background: #fff; border-radius: 10px; padding: 2rem 2.5rem;
       box-shadow: 0 1px 3px rgba(0, 0, 0, .12); }
.app { color: #52606d; font-size: .9rem; text-transform: uppercase; letter-spacing: .05em; margin: 0; }
h1 { margin: .2rem 0 1.2rem; font-size: 2rem; }
.role { border-radius: 8px; padding: 1rem 1.2rem; margin-bottom: 1.2rem; }
.role strong { display: block; font-size: 1.4rem; }
.green { background: #e3f9e5; color: #05400a; } .amber { background: #fff3c4; color: #513c06; }
.grey { background: #e4e7eb; color: #323f4b; } .red { background: #ffe3e3; color: #610404; }
footer { color: #7b8794; font-size: .85rem; border-top: 1px solid #e4e7eb; padding-top: .8rem; }
"""


def page(appliance: Appliance, role: Role, entry_url: str) -> str:
    e = html.escape
    entry = f"{entry_url}{appliance.cluster}/"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(appliance.name)} · {e(role.headline)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><main>
<p class="app">{e(appliance.application)} · cluster {e(appliance.cluster)}</p>
<h1>{e(appliance.name)}</h1>
<div class="role {role.tone}"><strong>{e(role.headline)}</strong>{e(role.detail)}</div>
<p>Users reach this cluster at <a href="{e(entry)}">{e(entry)}</a>: it leads to whichever appliance
is primary, so after a failover the same address (refresh it) lands on the other appliance.</p>
<footer>The demo's stand-in for the {e(appliance.application)} application on this appliance
(<code>make run</code>); the role comes from the appliance's agent, asked when this page loaded.</footer>
</main></body></html>
"""


def build_app(appliance: Appliance, entry_url: str, session: aiohttp.ClientSession) -> web.Application:
    async def show(request: web.Request) -> web.Response:
        role = await ask_agent(session, appliance)
        response = web.Response(text=page(appliance, role, entry_url), content_type="text/html")
        response.headers["Cache-Control"] = "no-store"  # the role changes: a refresh asks again
        return response

    app = web.Application()
    app.router.add_get("/", show)  # and HEAD
    return app


def load_appliances(spec: Path) -> list[Appliance]:
    agents = json.loads(spec.read_text())["agents"]
    return [
        Appliance(
            name=agent["name"],
            cluster=agent["cluster"],
            application=agent["application"],
            app_port=agent["app_port"],
            agent_url=f"http://{HOST}:{agent['intranet_port']}",
        )
        for agent in agents.values()
    ]


async def serve(appliances: list[Appliance], entry_url: str) -> None:
    timeout = aiohttp.ClientTimeout(total=AGENT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        runners = []
        for appliance in appliances:
            runner = web.AppRunner(build_app(appliance, entry_url, session), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, HOST, appliance.app_port).start()
            runners.append(runner)
            print(f"{appliance.name}: http://{HOST}:{appliance.app_port}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        for runner in runners:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.appliance_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True, help="the demo's demo.json (written by seed_demo)")
    parser.add_argument("--entry-url", required=True, help="the control plane's /go/ address, ending in /go/")
    args = parser.parse_args(argv)
    asyncio.run(serve(load_appliances(args.spec), args.entry_url))


if __name__ == "__main__":
    main()
