"""`make run`: the whole product on one machine, in the run folder `run/` (or `$DMS_RUN_DIR`).

    python -m cluster.demo                        migrate, seed, start everything, wait, print; Ctrl-C stops
    python -m cluster.demo kill-primary dmm-demo  SIGKILL the agent that is the cluster's primary now
    python -m cluster.demo start-agent dmm-demo-a start a demo agent again (after kill-primary)

What runs (each in its own process group, logs in run/logs/, pids in run/pids/): a redis-server of
the demo's own (on a free loopback port, data in run/redis/, no persistence: the heartbeat state and
the Celery queues belong to this run alone, whatever REDIS_URL says), a mail sink
(cluster/demo_mail.py: one .eml file per message in run/mail/), net-snmp's snmptrapd when installed
(traps logged to run/traps.log), four dms-agents (two clusters of two, loopback ports stored in
run/demo.json), a page per appliance standing in for its application (cluster/demo_app.py, the
servers' `web_url`, where /go/ lands), the web app (runserver), a heartbeat, a failover and a
default Celery worker, and beat. seed_demo adds an email rule and a trap rule sending every event to
the two sinks. The database is run/dms.sqlite3 (WAL, immediate transactions) unless DATABASE_URL is
set.

Stopping order: beat and the workers first (so that nothing fails over while the agents go down),
then the web app and the appliance pages, the agents, and last the sinks and the demo's Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("DMS_RUN_DIR") or ROOT / "run").resolve()
LOGS = RUN / "logs"
PIDS = RUN / "pids"
HOST = "127.0.0.1"
SQLITE_URL = f"sqlite:///{RUN / 'dms.sqlite3'}"  # the settings' default when RUN is ROOT/run
MAIL = RUN / "mail"
TRAP_LOG = RUN / "traps.log"
SNMPTRAPD = shutil.which("snmptrapd") or "/usr/sbin/snmptrapd"
MIBS = ROOT / "alerts" / "mibs"
# Debian ships no IETF MIB modules; the stand-ins for what our MIB imports (see its README.md).
BASE_MIB_STUBS = MIBS / "base-stubs"
CLUSTERS = ("dmm-demo", "sns-demo")
HEALTHY_DEADLINE_S = 60
STOP_TIMEOUT_S = 10
WORKERS = (  # name, queue, concurrency
    ("heartbeat", "heartbeat", 2),
    ("failover", "failover", 2),
    ("default", "default", 2),
)


class Stop(Exception):
    """SIGINT or SIGTERM."""


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def demo_cmd(args: str) -> str:
    """A `cluster.demo` command to print: the venv's python (relative when it is ours), and the run
    folder when it is not the default, so that the command can be pasted as printed."""
    py = rel(Path(sys.executable)) if Path(sys.executable).is_relative_to(ROOT) else sys.executable
    folder = f"DMS_RUN_DIR={shlex.quote(str(RUN))} " if RUN != ROOT / "run" else ""
    return f"{folder}{py} -m cluster.demo {args}"


# -- processes -------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tcp_listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def udp_bound(port: int) -> bool:
    """Someone holds the UDP port (snmptrapd answers nothing, so binding it is the only probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return True
        return False


def pid_file(name: str) -> Path:
    return PIDS / f"{name}.pid"


def ours(pid: int) -> bool:
    """`pid` is alive, not a zombie, and runs in this checkout (so a reused pid is never killed)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        cwd = Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
        # A private redis-server runs in run/redis, wherever DMS_RUN_DIR puts the run folder.
        return any(cwd == top or top in cwd.parents for top in (ROOT, RUN))
    except (OSError, IndexError):
        return False


def read_pid(name: str) -> int | None:
    try:
        pid = int(pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if ours(pid) else None


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # every child is a session (and group) leader: pgid == pid
    except ProcessLookupError:
        pass


def start_process(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the orchestrator only; it stops children in order
        )
    pid_file(name).write_text(f"{proc.pid}\n")
    return proc


def agent_args(spec: dict) -> list[str]:
    return [
        sys.executable, "-m", "agent", "--name", spec["name"],
        "--heartbeat-listen", f"{HOST}:{spec['heartbeat_port']}",
        "--intranet-listen", f"{HOST}:{spec['intranet_port']}",
        "--data-dir", spec["data_dir"], "--state-dir", spec["state_dir"],
        "--inventory", spec["inventory"],
    ]  # fmt: skip


def agent_env(base: dict[str, str], spec: dict) -> dict[str, str]:
    return {**base, "DMS_AGENT_TOKEN": spec["token"]}  # by environment: the token stays out of `ps`


def load_agents() -> dict[str, dict]:
    return json.loads((RUN / "demo.json").read_text())["agents"]


def log_tail(name: str, lines: int = 15) -> str:
    try:
        return "\n".join((LOGS / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def primary_serving(base_url: str) -> bool:
    """The agent's `GET /v1/primary` answers 200: primary at its epoch, holding a lease."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/v1/primary", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


class Demo:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
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
        if not self.redis():
            return 1
        if self.env["DATABASE_URL"] != SQLITE_URL:
            say("database: DATABASE_URL from the environment")
        else:
            say(f"database: {rel(RUN / 'dms.sqlite3')} (SQLite, WAL)")
        self.mail_sink()
        trap_port = self.trap_receiver()
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
        self.start("apps", [sys.executable, "-m", "cluster.demo_app", "--spec", str(RUN / "demo.json"),
                            "--entry-url", f"{url}/go/"], self.env)  # fmt: skip
        for name, queue, concurrency in WORKERS:
            self.start(
                f"worker-{name}",
                [*celery, "worker", "-Q", queue, "-c", str(concurrency), "-n", f"{name}@%h",
                 "--without-gossip", "--without-mingle", "-l", "INFO"],
                self.env,
            )  # fmt: skip
        self.start("beat", [*celery, "beat", "-s", str(RUN / "beat-schedule"), "-l", "INFO"], self.env)
        say(f"started 4 agents and their demo applications, the web app on {url}, 3 Celery workers and beat"
            f" (logs in {rel(LOGS)}/)")  # fmt: skip

        self.wait_for("agents", lambda: all(http_answers(f"http://{HOST}:{s['heartbeat_port']}/v1/primary")
                                             for s in agents.values()))  # fmt: skip
        self.wait_for("web app", lambda: http_answers(url + "/api/v1/health/"))
        self.wait_for("demo applications", lambda: all(tcp_listening(s["app_port"]) for s in agents.values()))
        for name, _, _ in WORKERS:
            self.wait_for(f"{name} worker", lambda n=name: "ready." in log_tail(f"worker-{n}", 200))
        healthy = self.wait_healthy()
        self.banner(url, healthy, time.monotonic() - started, trap_port)
        return self.watch()

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.procs[name] = start_process(name, args, env)

    def redis(self) -> bool:
        """A redis-server of the demo's own, in the run folder, without persistence: the heartbeat
        state and the Celery queues belong to this run alone (never another checkout's or an earlier
        run's), whatever REDIS_URL the environment names (docs/decisions.md, "The demo")."""
        import redis

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
        self.start(
            "redis",
            [server, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(data), "--daemonize", "no"],
            self.env,
        )  # fmt: skip
        pid = self.procs["redis"].pid
        url = f"redis://{HOST}:{port}/0"
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

        def ours_answers() -> bool:
            """Our server answers on the port (not another one that took the port in the meantime)."""
            try:
                return client.info("server")["process_id"] == pid
            except redis.RedisError:
                return False

        self.wait_for("the demo's Redis", ours_answers, timeout=15)
        self.env["REDIS_URL"] = url
        self.env["CELERY_BROKER_URL"] = url
        say(f"Redis: the demo's own redis-server at {url} (no persistence, stopped with the demo)")
        return True

    def mail_sink(self) -> None:
        """Email notifications go to the demo's own sink, whatever EMAIL_* the environment holds."""
        port = free_port()
        self.start(
            "mail", [sys.executable, "-m", "cluster.demo_mail", "--port", str(port), "--dir", str(MAIL)], self.env
        )
        self.wait_for("mail sink", lambda: tcp_listening(port), timeout=15)
        for name in ("EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL"):
            self.env.pop(name, None)
        self.env.update(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST=HOST, EMAIL_PORT=str(port)
        )
        say(f"mail sink: {HOST}:{port}, one file per message in {rel(MAIL)}/")

    def trap_receiver(self) -> int | None:
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
        self.start("snmptrapd", args, {**self.env, "SNMP_PERSISTENT_DIR": str(folder / "persist")})
        self.wait_for("snmptrapd", lambda: udp_bound(port), timeout=15)
        say(f"trap receiver: snmptrapd on udp {HOST}:{port}, logging to {rel(TRAP_LOG)}")
        return port

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

    def wait_for(self, what: str, predicate, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self.check_children(during_start=True)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
            time.sleep(0.2)

    def wait_healthy(self) -> bool:
        """Until both clusters are healthy (configured by the `configure_cluster` task), with progress."""
        import django

        django.setup()
        from django.db import close_old_connections

        from cluster.models import Cluster

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
                say(f"not healthy after {HEALTHY_DEADLINE_S} s: see {rel(LOGS)}/worker-default.log and agent logs")
                return False
            self.check_children(during_start=True)
            time.sleep(0.5)

    def banner(self, url: str, healthy: bool, elapsed: float, trap_port: int | None) -> None:
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
            f"Logs: {rel(LOGS)}/ (web, worker-heartbeat, worker-failover, worker-default, beat, agent-<name>,"
            " apps, mail, snmptrapd)",
            "Stop everything: Ctrl-C",
            "",
        ]
        print("\n".join(lines), flush=True)

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
                self.procs[f"{key} (restarted)"] = _Foreign(pid)
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


class _Foreign:
    """A process this orchestrator did not start but must stop (an agent from `start-agent`)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode = None

    def poll(self):
        return None if ours(self.pid) else 0

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while ours(self.pid):
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.05)
        return 0


# -- subcommands -----------------------------------------------------------------------------


def kill_primary(cluster_name: str) -> int:
    import django

    django.setup()
    from cluster.models import Cluster

    cluster = Cluster.objects.select_related("primary").filter(name=cluster_name).first()
    if cluster is None:
        print(f"No cluster named {cluster_name}.", file=sys.stderr)
        return 1
    name = cluster.primary.name
    pid = read_pid(f"agent-{name}")
    if pid is None:
        print(f"{name}, the primary of {cluster_name} (epoch {cluster.epoch}), is not running.", file=sys.stderr)
        return 1
    signal_group(pid, signal.SIGKILL)
    print(
        f"Killed {name} (pid {pid}, SIGKILL), the primary of {cluster_name} at epoch {cluster.epoch} "
        f"(state {cluster.state}).\nWithin a few seconds the secondary takes over at epoch {cluster.epoch + 1}: "
        f"watch the dashboard or GET /api/v1/clusters/{cluster.pk}/.\n"
        f"Bring {name} back (it rejoins as secondary): {demo_cmd('start-agent ' + name)}"
    )
    return 0


def start_agent(name: str) -> int:
    try:
        agents = load_agents()
    except OSError:
        print(f"No demo in {rel(RUN)}/: start it with `make run`.", file=sys.stderr)
        return 1
    if name not in agents:
        print(f"No demo agent named {name}; there are: {', '.join(agents)}.", file=sys.stderr)
        return 1
    if read_pid("demo") is None:
        print("The demo is not running: `make run` starts every agent.", file=sys.stderr)
        return 1
    pid = read_pid(f"agent-{name}")
    if pid:
        print(f"{name} is running already (pid {pid}).")
        return 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = start_process(f"agent-{name}", agent_args(agents[name]), agent_env(env, agents[name]))
    url = f"http://{HOST}:{agents[name]['heartbeat_port']}/v1/primary"
    deadline = time.monotonic() + 10
    while not http_answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"{name} did not start; see {rel(LOGS)}/agent-{name}.log", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"Started {name} (pid {proc.pid}); the control plane configures it as secondary once it answers.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.demo", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="start the demo (the default)")
    kill = commands.add_parser("kill-primary", help="SIGKILL the agent that is the cluster's primary now")
    kill.add_argument("cluster")
    start = commands.add_parser("start-agent", help="start a demo agent again (after kill-primary)")
    start.add_argument("name")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dms_admin.settings")
    # The settings' SQLite default is ROOT/run; the demo's database follows the run folder.
    os.environ.setdefault("DATABASE_URL", SQLITE_URL)
    if args.command == "kill-primary":
        return kill_primary(args.cluster)
    if args.command == "start-agent":
        return start_agent(args.name)
    try:
        return Demo().run()
    except RuntimeError as error:
        say(f"{error}; everything is stopped. Logs: {rel(LOGS)}/")
        return 1


if __name__ == "__main__":
    sys.exit(main())
