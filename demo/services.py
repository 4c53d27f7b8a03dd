"""What the product talks to, provided by the demo itself: a Redis, a mail sink, a trap receiver,
and a stand-in application per appliance. Each is started through the orchestrator (`Launcher`),
which logs it, records its pid and stops it with the rest.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Callable
from typing import Protocol

import redis

from demo.processes import HOST, free_port, tcp_listening, udp_bound
from demo.run_folder import MAIL, ROOT, RUN, SPEC, TRAP_LOG, rel, say

SNMPTRAPD = shutil.which("snmptrapd") or "/usr/sbin/snmptrapd"
MIBS = ROOT / "alerts" / "mibs"
# Debian ships no IETF MIB modules; the stand-ins for what our MIB imports (see its README.md).
BASE_MIB_STUBS = MIBS / "base-stubs"


class Launcher(Protocol):
    env: dict[str, str]  # what the control plane's processes are started with

    def start(self, name: str, args: list[str], env: dict[str, str]) -> int: ...

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 60) -> None: ...


def start_redis(demo: Launcher) -> bool:
    """A redis-server of the demo's own, in the run folder, without persistence: the heartbeat state
    and the Celery queues belong to this run alone (never another checkout's or an earlier run's),
    whatever REDIS_URL the environment names (docs/decisions.md, "The demo")."""
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        if os.environ.get(name):
            say(f"{name} from the environment is not used: the demo runs a Redis of its own")
    server = shutil.which("redis-server")
    if not server:
        say("the demo runs a redis-server of its own, and redis-server is not installed.")
        say("install it (Debian/Ubuntu: sudo apt-get install redis-server), then: make run")
        return False
    port = free_port()
    data = RUN / "redis"
    data.mkdir(exist_ok=True)
    pid = demo.start(
        "redis",
        [server, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--dir", str(data), "--daemonize", "no"],
        demo.env,
    )  # fmt: skip
    url = f"redis://{HOST}:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def ours_answers() -> bool:
        """Our server answers on the port (not another one that took the port in the meantime)."""
        try:
            return client.info("server")["process_id"] == pid
        except redis.RedisError:
            return False

    demo.wait_for("the demo's Redis", ours_answers, timeout=15)
    demo.env["REDIS_URL"] = demo.env["CELERY_BROKER_URL"] = url
    say(f"Redis: the demo's own redis-server at {url} (no persistence, stopped with the demo)")
    return True


def start_mail_sink(demo: Launcher) -> None:
    """Email notifications go to the demo's own sink, whatever EMAIL_* the environment holds."""
    port = free_port()
    demo.start("mail", [sys.executable, "-m", "demo.mail_sink", "--port", str(port), "--dir", str(MAIL)], demo.env)
    demo.wait_for("mail sink", lambda: tcp_listening(port), timeout=15)
    for name in ("EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL"):
        demo.env.pop(name, None)
    demo.env.update(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST=HOST, EMAIL_PORT=str(port))
    say(f"mail sink: {HOST}:{port}, one file per message in {rel(MAIL)}/")


def start_trap_receiver(demo: Launcher) -> int | None:
    """snmptrapd on a free UDP port, logging to run/traps.log with the project's MIB loaded; its
    port, or None when net-snmp's snmptrapd is not installed (the demo runs without traps)."""
    if not os.access(SNMPTRAPD, os.X_OK):
        say("snmptrapd is not installed: no trap log (Debian/Ubuntu: sudo apt-get install snmptrapd)")
        return None
    folder = RUN / "snmptrapd"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "snmptrapd.conf"
    conf.write_text("authCommunity log public\n")  # v2c community public: the demo's trap rule
    port = free_port(socket.SOCK_DGRAM)
    # -A appends: the log keeps earlier runs' traps, as run/mail/ keeps their mail.
    args = [
        SNMPTRAPD, "-f", "-C", "-c", str(conf), "-M", f"{BASE_MIB_STUBS}:{MIBS}", "-m", "DMS-FAILOVER-MIB",
        "-A", "-Lf", str(TRAP_LOG), f"udp:{HOST}:{port}",
    ]  # fmt: skip
    # Its engine ID and boot counter go to the run folder, not /var/lib/snmp.
    demo.start("snmptrapd", args, {**demo.env, "SNMP_PERSISTENT_DIR": str(folder / "persist")})
    demo.wait_for("snmptrapd", lambda: udp_bound(port), timeout=15)
    say(f"trap receiver: snmptrapd on udp {HOST}:{port}, logging to {rel(TRAP_LOG)}")
    return port


def start_appliance_pages(demo: Launcher, agents: dict[str, dict], web_url: str) -> None:
    """The appliances' stand-in applications (demo/appliance_pages.py): where /go/ lands."""
    args = [sys.executable, "-m", "demo.appliance_pages", "--spec", str(SPEC), "--entry-url", f"{web_url}/go/"]
    demo.start("apps", args, demo.env)
    demo.wait_for("appliance pages", lambda: all(tcp_listening(spec["app_port"]) for spec in agents.values()))
