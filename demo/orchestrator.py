"""The orchestrator of `make run`: one run of the demo, from an empty run folder to Ctrl-C.

It starts, in order: the demo's Redis, mail sink and trap receiver (demo/services.py); `manage.py
migrate` and `seed_demo`; the four agents (demo/agents.py), the web app, the appliance pages, three
Celery workers and beat; then waits until both clusters are healthy with their primaries serving,
prints the banner (demo/banner.py) and watches its children. Stopping order: beat and the workers
first (so that nothing fails over while the agents go down), then the web app and the appliance
pages, the agents, and last the sinks and the demo's Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from django.db import close_old_connections

from cluster.models import Cluster
from demo.agents import agent_args, agent_env
from demo.banner import banner
from demo.processes import (
    HOST,
    Foreign,
    free_port,
    http_answers,
    port_free,
    primary_serving,
    signal_group,
    start_process,
)
from demo.run_folder import LOGS, PIDS, RUN, SQLITE_URL, demo_cmd, load_agents, log_tail, pid_file, read_pid, rel, say
from demo.services import start_appliance_pages, start_mail_sink, start_redis, start_trap_receiver

CLUSTERS = ("dmm-demo", "sns-demo")
HEALTHY_DEADLINE_S = 60
STOP_TIMEOUT_S = 10
WORKERS = (  # name, queue, concurrency
    ("heartbeat", "heartbeat", 2),
    ("failover", "failover", 2),
    ("default", "default", 2),
    ("replication", "replication", 1),
)


class Stop(Exception):
    """SIGINT or SIGTERM."""


class Demo:
    """One run: start everything in order, watch the children, stop everything in order."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen | Foreign] = {}
        self.exited: set[str] = set()
        self.env = dict(os.environ)
        self.env.update(DJANGO_SETTINGS_MODULE="dms_admin.settings", PYTHONUNBUFFERED="1")
        self.env.setdefault("DJANGO_DEBUG", "1")  # the demo's own processes only; off by default
        self.stopping = False

    # signals ---------------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        if not self.stopping:
            self.stopping = True
            raise Stop()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            if not self.claim_run_folder():
                return 1
            return self.start_and_watch()
        except Stop:
            print(flush=True)
            say("stopping…")
            return 0
        finally:
            self.stop_all()
            pid_file("demo").unlink(missing_ok=True)

    def claim_run_folder(self) -> bool:
        RUN.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(exist_ok=True)
        PIDS.mkdir(exist_ok=True)
        running = read_pid("demo")
        if running and running != os.getpid():
            say(f"a demo is already running here (pid {running}); stop it with: kill -INT {running}")
            return False
        pid_file("demo").write_text(f"{os.getpid()}\n")
        # Leftovers of a run that could not stop cleanly (its orchestrator was SIGKILLed).
        for path in sorted(PIDS.glob("*.pid")):
            pid = read_pid(path.stem)
            if path.stem != "demo" and pid:
                say(f"stopping {path.stem} (pid {pid}) left over from an earlier run")
                signal_group(pid, signal.SIGKILL)
            if path.stem != "demo":
                path.unlink(missing_ok=True)
        return True

    # start -----------------------------------------------------------------------------------

    def start_and_watch(self) -> int:
        started = time.monotonic()
        if not start_redis(self):
            return 1
        if self.env["DATABASE_URL"] != SQLITE_URL:
            say("database: DATABASE_URL from the environment")
        else:
            say(f"database: {rel(RUN / 'dms.sqlite3')} (SQLite, WAL)")
        start_mail_sink(self)
        trap_port = start_trap_receiver(self)
        if not self.manage("migrate", ["migrate", "--noinput"]):
            return 1
        seed = ["seed_demo", "--run-dir", str(RUN)] + (["--trap-port", str(trap_port)] if trap_port else [])
        if not self.manage("seed_demo", seed, show=True):
            return 1
        agents = load_agents()
        for spec in agents.values():
            self.start(f"agent-{spec['name']}", agent_args(spec), agent_env(self.env, spec))
        port = self.web_port()
        url = f"http://{HOST}:{port}"
        self.env.setdefault("SITE_URL", url)
        celery = [sys.executable, "-m", "celery", "-A", "dms_admin"]
        self.start("web", [sys.executable, "manage.py", "runserver", f"{HOST}:{port}", "--noreload"], self.env)
        for name, queue, concurrency in WORKERS:
            self.start(
                f"worker-{name}",
                [*celery, "worker", "-Q", queue, "-c", str(concurrency), "-n", f"{name}@%h",
                 "--without-gossip", "--without-mingle", "-l", "INFO"],
                self.env,
            )  # fmt: skip
        self.start("beat", [*celery, "beat", "-s", str(RUN / "beat-schedule"), "-l", "INFO"], self.env)
        say(f"started 4 agents, the web app on {url}, 3 Celery workers and beat (logs in {rel(LOGS)}/)")

        self.wait_for("agents", lambda: all(http_answers(f"http://{HOST}:{s['heartbeat_port']}/v1/primary")
                                             for s in agents.values()))  # fmt: skip
        self.wait_for("web app", lambda: http_answers(url + "/api/v1/health/"))
        start_appliance_pages(self, agents, url)
        for name, _, _ in WORKERS:
            self.wait_for(f"{name} worker", lambda n=name: "ready." in log_tail(f"worker-{n}", 200))
        healthy = self.wait_healthy()
        print(banner(url, healthy, time.monotonic() - started, trap_port), flush=True)
        return self.watch()

    def start(self, name: str, args: list[str], env: dict[str, str]) -> int:
        self.procs[name] = start_process(name, args, env)
        return self.procs[name].pid

    def manage(self, name: str, args: list[str], show: bool = False) -> bool:
        say(f"manage.py {' '.join(args[:1])}…")
        proc = self.procs[name] = start_process(name, [sys.executable, "manage.py", *args], self.env)
        code = proc.wait()
        del self.procs[name]
        pid_file(name).unlink(missing_ok=True)
        output = log_tail(name, 40)
        if code != 0:
            say(f"manage.py {args[0]} failed (exit {code}); the end of {rel(LOGS / (name + '.log'))}:")
            print(output, flush=True)
            return False
        if show:
            for line in output.split("=====")[-1].splitlines()[1:]:
                print(f"  {line}", flush=True)
        return True

    def web_port(self) -> int:
        wanted = os.environ.get("PORT")
        port = int(wanted) if wanted else 8000
        if port_free(port):
            return port
        other = free_port()
        say(f"port {port} is taken; the web app uses {other}")
        return other

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self.check_children(during_start=True)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
            time.sleep(0.2)

    def wait_healthy(self) -> bool:
        """Until both clusters are healthy (configured by the `configure_cluster` task), with progress."""
        deadline = time.monotonic() + HEALTHY_DEADLINE_S
        last = None
        waited = time.monotonic()
        while True:
            close_old_connections()
            rows = {c.name: c for c in Cluster.objects.filter(name__in=CLUSTERS).select_related("primary")}
            # A state left over from the last run is not enough: the primary must be serving (it holds
            # a lease, so the control plane is granting) before the demo counts as up.
            serving = {n: n in rows and primary_serving(rows[n].primary.heartbeat_url) for n in CLUSTERS}
            status = ", ".join(
                f"{n} {rows[n].state} (epoch {rows[n].epoch}, {rows[n].primary.name} "
                f"{'serving' if serving[n] else 'not serving yet'})"
                if n in rows
                else f"{n} missing"
                for n in CLUSTERS
            )
            if status != last:
                say(f"{time.monotonic() - waited:4.1f} s  {status}")
                last = status
            if all(n in rows and rows[n].state == "healthy" and serving[n] for n in CLUSTERS):
                close_old_connections()
                return True
            if time.monotonic() > deadline:
                say(
                    f"not healthy after {HEALTHY_DEADLINE_S} s: see {rel(LOGS)}/worker-default.log, "
                    "worker-replication.log and the agent logs"
                )
                return False
            self.check_children(during_start=True)
            time.sleep(0.5)

    # watch and stop --------------------------------------------------------------------------

    def check_children(self, during_start: bool = False) -> None:
        for name, proc in list(self.procs.items()):
            if name in self.exited or proc.poll() is None:
                continue
            self.exited.add(name)
            if name.startswith("agent-"):
                say(f"{name[6:]} exited (code {proc.returncode}); start it again: "
                    f"{demo_cmd('start-agent ' + name[6:])}")  # fmt: skip
            else:
                say(f"{name} exited unexpectedly (code {proc.returncode}); the end of {rel(LOGS)}/{name}.log:")
                print(log_tail(name), flush=True)
                if during_start:
                    raise RuntimeError(f"{name} did not start")

    def watch(self) -> int:
        while True:
            self.check_children()
            time.sleep(0.5)

    def stop_all(self) -> None:
        self.stopping = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Agents restarted with `start-agent` are not our children: find them by pid file.
        agents = {}
        try:
            agents = load_agents()
        except (OSError, ValueError, KeyError):
            pass
        for name in agents:
            key = f"agent-{name}"
            pid = read_pid(key)
            if pid and (key not in self.procs or self.procs[key].pid != pid):
                self.procs[f"{key} (restarted)"] = Foreign(pid)
        tiers = [
            [n for n in self.procs if n == "beat" or n.startswith("worker-")],
            [n for n in self.procs if n in ("web", "apps", "migrate", "seed_demo")],
            [n for n in self.procs if n.startswith("agent-")],
            [n for n in self.procs if n in ("mail", "snmptrapd", "redis")],
        ]
        stopped = []
        for tier in tiers:
            alive = [n for n in tier if self.procs[n].poll() is None]
            for name in alive:
                signal_group(self.procs[name].pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for name in alive:
                proc = self.procs[name]
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop within {STOP_TIMEOUT_S} s: killed")
                # Pool children of a Celery worker, anything the process left behind.
                signal_group(proc.pid, signal.SIGKILL)
                stopped.append(name)
            for name in tier:
                pid_file(name.split(" ")[0]).unlink(missing_ok=True)
        if stopped:
            say(f"stopped {len(stopped)} processes: {', '.join(stopped)}")
        if self.procs:
            say("everything the demo started is stopped; `make run` starts it again")
        self.procs.clear()
