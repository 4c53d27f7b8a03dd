"""One campaign from start to report: set up the rig, let the nemesis loose for the fault period, heal
everything, watch the quiet tail, check the history, report, and tear everything down — also on
Ctrl-C or a failure (processes, delay proxies, namespaces, bridges; nft tables go with namespaces).

Needs Django set up on the campaign's own database and Redis (`python -m tests.nemesis` does it).
"""

from __future__ import annotations

import signal
import ssl
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.core.management import call_command
from django.db import connection, transaction

from alerts.models import Event
from cluster.models import Cluster
from tests.nemesis import checkers, network
from tests.nemesis.convergence import await_convergence, await_recoveries, bound_s, primary_status
from tests.nemesis.faults import Nemesis, World, wait_redis
from tests.nemesis.history import History, Sampler
from tests.nemesis.notifications import Receivers
from tests.nemesis.processes import (
    WORKERS,
    Agent,
    Managed,
    celery_beat,
    celery_worker,
    control_env,
    control_ready,
    redis_server,
)
from tests.nemesis.report import render
from tests.nemesis.schedule import draw_schedule
from tests.nemesis.tls import CertificateAuthority
from tests.support.controlplane import server_row
from tests.support.notifications import CRASH_TIMEOUT_S

START_TIMEOUT_S = 120
TOKEN = "nemesis-agent-token"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def interrupt(signum, frame) -> None:
    """Ctrl-C and SIGTERM end a campaign through the teardown."""
    raise KeyboardInterrupt


class Campaign:
    def __init__(
        self, *, seed: int, minutes: float, clusters: int, run_dir: Path, database_url: str, redis_port: int,
        fail_on: set[str] | None = None,
    ):  # fmt: skip
        self.seed, self.minutes = seed, minutes
        self.fail_on = fail_on  # the violation kinds that fail the run; None: every kind
        self.names = [f"nemesis-{i + 1}" for i in range(clusters)]
        self.run_dir = run_dir
        self.database_url = database_url
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.redis = redis_server(redis_port, run_dir / "redis", run_dir / "logs")
        self.history = History(run_dir / "history.jsonl", seed)
        self.agents: dict[str, Agent] = {}
        self.control: dict[str, Managed] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.world: World | None = None
        self.sampler: Sampler | None = None
        self.receivers: Receivers | None = None

    def say(self, message: str) -> None:
        print(f"nemesis {self.history.since(time.monotonic())}: {message}", flush=True)

    # -- the whole run ----------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGINT, interrupt)  # also when started with SIGINT ignored (a background job)
        try:
            self.setup()
            return self.campaign()
        except KeyboardInterrupt:
            self.say("interrupted")
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
            self.teardown()

    def campaign(self) -> int:
        schedule = draw_schedule(self.seed, self.minutes * 60, self.names)
        self.say(f"{len(schedule)} faults drawn for {self.minutes:g} minutes (seed {self.seed})")
        self.sampler = Sampler(self.history, self.clusters)
        self.sampler.start()
        nemesis = Nemesis(self.world, self.history)
        window_start = self.history.start_clock()
        nemesis.run(schedule, self.minutes * 60)
        nemesis.heal_all()
        self.say("faults healed; waiting for every process to be back")
        wait_for(lambda: all(control_ready(p) for p in self.control.values()), START_TIMEOUT_S, "control plane ready")
        self.history("quiet_tail")
        await_convergence(self.history, self.clusters, self.ssl_context())
        window_end = time.monotonic()
        rows = Cluster.objects.filter(pk__in=[c["pk"] for c in self.clusters.values()])
        await_recoveries(self.history, self.clusters, max(r.replication_interval + bound_s(r) for r in rows))
        self.receivers.check(self.history, CRASH_TIMEOUT_S)
        self.sampler.stop()
        self.record_events()
        violations, availability = self.check(window_start, window_end)
        text = render(
            seed=self.seed, minutes=self.minutes, history=self.history, violations=violations,
            availability=availability, events=self.event_counts(), final=self.final_states(),
        )  # fmt: skip
        print(text, flush=True)
        (self.run_dir / "report.txt").write_text(text + "\n")
        self.say(f"history, logs and report in {self.run_dir}")
        failing = [v for v in violations if self.fail_on is None or v.kind in self.fail_on]
        if violations and not failing:
            self.say(
                f"{len(violations)} violations reported, none of the kinds that fail this run ({sorted(self.fail_on)})"
            )
        return 1 if failing else 0

    # -- setup ------------------------------------------------------------------------------------

    def setup(self) -> None:
        self.say(f"seed {self.seed}, {self.minutes:g} minutes, {len(self.names)} clusters; folder {self.run_dir}")
        leftovers = network.teardown()
        if leftovers:
            self.say(f"removed leftovers of an earlier run: {', '.join(leftovers)}")
        self.redis.start()
        wait_redis(self.redis_url, 15)
        call_command("migrate", verbosity=0)
        ca = CertificateAuthority(self.run_dir / "tls")
        network.setup_bridges()
        for index, name in enumerate(f"{c}-{side}" for c in self.names for side in ("a", "b")):
            host = network.add_host(index)
            tls = ca.issue(name, [host.address("hb"), host.address("in")])
            self.agents[name] = Agent(name, host, self.run_dir / "agents" / name, TOKEN, tls, ca.pem).start()
        self.ca_pem = ca.pem
        context = self.ssl_context()
        for agent in self.agents.values():
            wait_for(lambda a=agent: primary_status(a, context) is not None, 30, f"{agent.name} answering")
        self.receivers = Receivers(self.run_dir)
        env = {**control_env(self.database_url, self.redis_url, ca.pem), **self.receivers.env()}
        logs = self.run_dir / "logs"
        self.control = {queue: celery_worker(queue, concurrency, env, logs) for queue, concurrency in WORKERS}
        self.control["beat"] = celery_beat(env, logs)
        for process in self.control.values():
            process.start()
        wait_for(lambda: all(control_ready(p) for p in self.control.values()), START_TIMEOUT_S, "control plane ready")
        self.create_clusters()
        self.world = World(self.agents, self.control, self.redis, self.redis_url,
                           {n: c["pk"] for n, c in self.clusters.items()}, self.run_dir)  # fmt: skip
        self.say("every cluster healthy, its primary serving; the nemesis starts")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))

    def create_clusters(self) -> None:
        """Server rows as the tests make them, clusters at the product's default timing."""
        for name in self.names:
            agents = {side: self.agents[f"{name}-{side}"] for side in ("a", "b")}
            rows = {
                side: server_row(
                    SimpleNamespace(
                        name=agent.name, heartbeat_url=agent.url("hb"), intranet_url=agent.url("in"), token=TOKEN
                    ),
                    "DMM-SVR-C210-K9" if side == "a" else "DMM-FA-C210-K9",
                )  # fmt: skip
                for side, agent in agents.items()
            }
            with transaction.atomic():
                cluster = Cluster.objects.create(name=name, application="dmm", primary=rows["a"], secondary=rows["b"])
                self.receivers.add_rules(cluster)
            self.clusters[name] = {"pk": cluster.pk, "agents": {a.name: a for a in agents.values()}}
        context = self.ssl_context()

        def ready() -> bool:
            healthy = Cluster.objects.filter(pk__in=[c["pk"] for c in self.clusters.values()], state="healthy")
            return healthy.count() == len(self.clusters) and all(
                primary_status(self.agents[f"{name}-a"], context) == 200 for name in self.names
            )

        wait_for(ready, START_TIMEOUT_S, "every cluster healthy with its primary serving", interval=1)

    # -- checks and report ------------------------------------------------------------------------

    def check(self, start: float, end: float) -> tuple[list[checkers.Violation], dict[str, dict]]:
        deaths: dict[str, list[float]] = {}
        for record in self.history.of("death"):
            deaths.setdefault(record["agent"], []).append(record["t"])
        violations = checkers.tail_violations(self.history.records)
        availability = {}
        for name, cluster in self.clusters.items():
            spans = [s for a in cluster["agents"].values() for s in checkers.agent_spans(a, deaths.get(a.name, []))]
            agent_samples = [r for r in self.history.of("agent") if r["cluster"] == name]
            db_samples = [r for r in self.history.of("db") if r["cluster"] == name]
            wipes = [r for r in self.history.of("wipe") if r["agent"] in cluster["agents"]]
            violations += checkers.overlaps(name, spans)
            violations += checkers.epoch_reuse(name, spans, agent_samples)
            violations += checkers.epochs_only_grow(name, db_samples, agent_samples, wipes)
            violations += checkers.promotions_step_by_one(name, self.promotions(cluster["pk"]))
            availability[name] = checkers.availability(spans, start, end)
            row = Cluster.objects.get(pk=cluster["pk"])
            availability[name]["dark_while_healthy"] = checkers.dark_while_healthy(
                availability[name]["outages"], db_samples, bound_s(row)
            )
        return violations, availability

    def promotions(self, pk: int) -> list[dict]:
        rows = Event.objects.filter(cluster_id=pk, type__in=["failover_completed", "switchover_completed"])
        return [
            {"t": self.history.started + event.created_at.timestamp() - self.history.started_wall,
             "epoch": event.details.get("epoch"), "type": event.type}
            for event in rows.order_by("id")
        ]  # fmt: skip

    def record_events(self) -> None:
        """The clusters' events into the history, for post-mortems once the database is dropped."""
        for name, cluster in self.clusters.items():
            for event in Event.objects.filter(cluster_id=cluster["pk"]).select_related("server").order_by("id"):
                self.history(
                    "event", cluster=name, id=event.id, type=event.type, server=event.server and event.server.name,
                    at=event.created_at.timestamp(), message=event.message, details=event.details,
                    recovers=event.recovers_id,
                )  # fmt: skip

    def event_counts(self) -> dict[str, Counter]:
        return {
            name: Counter(Event.objects.filter(cluster_id=c["pk"]).values_list("type", flat=True))
            for name, c in self.clusters.items()
        }

    def final_states(self) -> dict[str, str]:
        rows = Cluster.objects.select_related("primary").filter(pk__in=[c["pk"] for c in self.clusters.values()])
        return {row.name: f"{row.state}, primary {row.primary.name}, epoch {row.epoch}" for row in rows}

    # -- teardown ---------------------------------------------------------------------------------

    def teardown(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        for process in self.control.values():
            process.terminate(timeout=5)
        if self.world is not None:
            for proxy in list(self.world.proxies.values()):
                proxy.kill()
        for agent in self.agents.values():
            agent.kill()
        self.redis.kill()
        if self.receivers is not None:
            self.receivers.stop()
        network.teardown()
        self.history.close()
        connection.close()
