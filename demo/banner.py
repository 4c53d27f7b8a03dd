"""What `make run` prints once everything is up: where to look, how to log in, and the failover to try."""

from __future__ import annotations

from demo.processes import HOST
from demo.run_folder import LOGS, MAIL, RUN, TRAP_LOG, demo_cmd, rel


def banner(url: str, healthy: bool, elapsed: float, trap_port: int | None) -> str:
    password = (RUN / "admin-password").read_text().strip()
    if trap_port:
        traps = f"{rel(TRAP_LOG)}   (snmptrapd on udp {HOST}:{trap_port}, community public)"
    else:
        traps = "none: snmptrapd is not installed (sudo apt-get install snmptrapd, then make run again)"
    lines = [
        "",
        f"DMS Failover demo is running ({'both clusters healthy' if healthy else 'NOT healthy yet'},"
        f" ready in {elapsed:.0f} s).",
        "",
        f"  Dashboard   {url}/",
        f"  Login       admin / {password}",
        f"  API docs    {url}/api/docs/   (OpenAPI schema: {url}/api/schema/)",
        f"  Entry URL   {url}/go/dmm-demo/   (leads to the application page of the current DMM primary)",
        f"  Mail sink   {rel(MAIL)}/   (one .eml file per message, every event)",
        f"  Trap log    {traps}",
        "",
        "Try a failover: kill whichever agent is the DMM primary now (SIGKILL), then refresh the entry URL,",
        f"the dashboard, the alerts page ({url}/alerts/), the mail sink and the trap log:",
        f"  {demo_cmd('kill-primary dmm-demo')}",
        "",
        f"Logs: {rel(LOGS)}/ (web, worker-heartbeat, worker-failover, worker-default, worker-replication,"
        " beat, agent-<name>, apps, mail, snmptrapd)",
        "Stop everything: Ctrl-C",
        "",
    ]
    return "\n".join(lines)
