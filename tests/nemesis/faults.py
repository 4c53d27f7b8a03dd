"""The nemesis: injects each scheduled fault for real and heals it after its drawn duration.

Network faults are nftables rules inside the appliance's namespace (drop = black hole, reject =
TCP reset, random loss with `numgen`, duplication with `dup`), or the delay proxy with a `redirect`
to it; process faults are signals to real processes (SIGKILL then a restart, as systemd would;
SIGSTOP then SIGCONT); a wiped agent loses its whole state directory (its serving log is kept aside
for the checkers); clock faults restart a process under libfaketime; operator actions go through the
same code as the REST API (the cluster serializer, `cluster.actions`); PostgreSQL is the campaign's
own cluster, stopped (cleanly or as a crash) and started. Every inject, heal and
refusal is recorded in the history.
"""

from __future__ import annotations

import heapq
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from django.contrib.auth import get_user_model
from django.db import close_old_connections
from django.test import RequestFactory

from cluster import actions
from cluster.api.serializers import ClusterSerializer
from cluster.models import Cluster
from tests.nemesis import postgres
from tests.nemesis.history import History
from tests.nemesis.network import IFACE, control_address
from tests.nemesis.processes import AGENT_PORT, REPO_ROOT, Agent, Managed
from tests.nemesis.schedule import DEFAULT_INTERVAL, Fault

DELAY_PROXY_PORT = 9443
SUPERVISE_S = 0.5


@dataclass
class World:
    """What the nemesis acts on."""

    agents: dict[str, Agent]
    control: dict[str, Managed]  # heartbeat, failover, default, beat
    redis: Managed
    redis_url: str
    clusters: dict[str, int]  # name -> pk
    run_dir: Path
    proxies: dict[int, subprocess.Popen] = field(default_factory=dict)

    def managed(self) -> list[Managed]:
        return [self.redis, *self.control.values(), *self.agents.values()]


def networks(params: dict[str, Any]) -> list[str]:
    return ["hb", "in"] if params["network"] == "both" else [params["network"]]


def directions(params: dict[str, Any]) -> list[str]:
    return ["in", "out"] if params["direction"] == "both" else [params["direction"]]


class Nemesis:
    def __init__(self, world: World, history: History):
        self.world = world
        self.history = history
        self.active: dict[int, tuple[Fault, Any]] = {}
        self._pending: list[tuple[float, int, str, Fault]] = []

    # -- the run ----------------------------------------------------------------------------------

    def run(self, schedule: list[Fault], seconds: float) -> None:
        """Inject the schedule over `seconds`, healing each fault when its time comes; supervise the
        processes meanwhile. Faults still active at the end are healed by `heal_all`."""
        start = time.monotonic()
        end = start + seconds
        for fault in schedule:
            heapq.heappush(self._pending, (start + fault.at, fault.id, "inject", fault))
        while (now := time.monotonic()) < end:
            if self._pending and self._pending[0][0] <= now:
                _, _, phase, fault = heapq.heappop(self._pending)
                self._step(phase, fault)
                continue
            self.supervise()
            next_due = self._pending[0][0] if self._pending else end
            time.sleep(max(0.0, min(SUPERVISE_S, next_due - now, end - now)))

    def heal_all(self) -> None:
        """Heal every active fault now (the quiet tail begins); drop the injections still to come."""
        for _, _, phase, fault in sorted(self._pending):
            if phase == "heal":
                self._step("heal", fault)
        self._pending.clear()
        self.supervise()

    def _step(self, phase: str, fault: Fault) -> None:
        close_old_connections()
        try:
            if phase == "inject":
                state = getattr(self, f"inject_{fault.kind}")(fault)
                self.active[fault.id] = (fault, state)
                self.history("fault", phase="inject", id=fault.id, fault=fault.kind, target=fault.target,
                             duration=fault.duration, params=fault.params)  # fmt: skip
                heapq.heappush(self._pending, (time.monotonic() + fault.duration, fault.id, "heal", fault))
            else:
                _, state = self.active.pop(fault.id)
                getattr(self, f"heal_{fault.kind}", lambda f, s: None)(fault, state)
                self.history("fault", phase="heal", id=fault.id, fault=fault.kind, target=fault.target)
        except Exception as exc:  # one fault that cannot be injected must not end the campaign
            self.history(
                "fault_error", phase=phase, id=fault.id, fault=fault.kind, target=fault.target, error=repr(exc)
            )

    def supervise(self) -> None:
        """Restart what died without the nemesis killing it (systemd's Restart=always)."""
        for process in self.world.managed():
            if process.wanted and not process.alive:
                self.history("unexpected_exit", process=process.name, returncode=process.proc.returncode)
                if isinstance(process, Agent):  # dead since at most one supervision round
                    self.history("death", agent=process.name)
                self._start(process)

    def _start(self, process: Managed) -> None:
        process.start()
        if isinstance(process, Agent):
            self.history("agent_start", agent=process.name, clock_offset=process.clock_offset)

    def _kill(self, process: Managed) -> None:
        process.kill()
        if isinstance(process, Agent):
            self.history("death", agent=process.name)

    # -- network ----------------------------------------------------------------------------------

    def _rules(self, fault: Fault, make_rule) -> list[tuple[str, str, int]]:
        host = self.world.agents[fault.target].host
        added = []
        for family_table, chain, rule in make_rule():
            added.append((family_table, chain, host.add_rule(family_table, chain, rule)))
        return added

    def _delete_rules(self, fault: Fault, rules: list[tuple[str, str, int]]) -> None:
        host = self.world.agents[fault.target].host
        for family_table, chain, handle in rules:
            host.delete_rule(family_table, chain, handle)

    @staticmethod
    def _filter_rules(params: dict[str, Any], verdict: str):
        for network in networks(params):
            for direction in directions(params):
                chain, match = ("input", "iifname") if direction == "in" else ("output", "oifname")
                yield "inet nemesis", chain, f'{match} "{IFACE[network]}" {verdict}'

    def inject_net_drop(self, fault: Fault):
        return self._rules(fault, lambda: self._filter_rules(fault.params, "drop"))

    def inject_net_reject(self, fault: Fault):
        return self._rules(fault, lambda: self._filter_rules(fault.params, "meta l4proto tcp reject with tcp reset"))

    def inject_net_loss(self, fault: Fault):
        verdict = f"numgen random mod 100 < {fault.params['percent']} drop"
        return self._rules(fault, lambda: self._filter_rules({**fault.params, "direction": "both"}, verdict))

    def inject_net_duplicate(self, fault: Fault):
        def rules():
            for network in networks(fault.params):
                to, iface = control_address(network), IFACE[network]
                yield "ip nemesis_dup", "output", f'oifname "{iface}" ip daddr {to} dup to {to} device "{iface}"'

        return self._rules(fault, rules)

    def inject_net_delay(self, fault: Fault):
        agent = self.world.agents[fault.target]
        argv = [
            "ip", "netns", "exec", agent.host.netns, sys.executable, "-m", "tests.nemesis.delayproxy",
            "--port", str(DELAY_PROXY_PORT), "--delay", str(fault.params["delay"]),
            "--jitter", str(fault.params["jitter"]), "--seed", str(fault.id),
        ]  # fmt: skip
        log_path = agent.base_dir / f"delayproxy-{fault.id}.log"
        with open(log_path, "wb") as log:
            proxy = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.world.proxies[proxy.pid] = proxy
        deadline = time.monotonic() + 5
        while proxy.poll() is None and "listening" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)

        def rules():
            for network in networks(fault.params):
                rule = f'iifname "{IFACE[network]}" tcp dport {AGENT_PORT} redirect to :{DELAY_PROXY_PORT}'
                yield "inet nemesis", "prerouting", rule

        return proxy, self._rules(fault, rules)

    def heal_net_delay(self, fault: Fault, state) -> None:
        proxy, rules = state
        self._delete_rules(fault, rules)
        proxy.kill()
        proxy.wait(10)
        self.world.proxies.pop(proxy.pid, None)

    heal_net_drop = heal_net_reject = heal_net_loss = heal_net_duplicate = _delete_rules

    # -- agents -----------------------------------------------------------------------------------

    def inject_agent_kill(self, fault: Fault):
        self._kill(self.world.agents[fault.target])

    def heal_agent_kill(self, fault: Fault, state) -> None:
        self._start(self.world.agents[fault.target])

    def inject_agent_pause(self, fault: Fault):
        self.world.agents[fault.target].pause()

    def heal_agent_pause(self, fault: Fault, state) -> None:
        self.world.agents[fault.target].resume()

    def inject_agent_wipe(self, fault: Fault):
        """The appliance loses its disk: killed, its state directory gone (kept aside, serving log and
        all, for the checkers), started again on an empty one."""
        agent = self.world.agents[fault.target]
        self._kill(agent)
        if agent.state_dir.exists():
            agent.state_dir.rename(agent.base_dir / f"state-wiped-{fault.id}")
        self.history("wipe", agent=agent.name)

    heal_agent_wipe = heal_agent_kill

    def inject_agent_clock(self, fault: Fault):
        self._restart_with_offset(self.world.agents[fault.target], fault.params["offset"])

    def heal_agent_clock(self, fault: Fault, state) -> None:
        self._restart_with_offset(self.world.agents[fault.target], 0.0)

    def _restart_with_offset(self, process: Managed, offset: float) -> None:
        self._kill(process)
        process.clock_offset = offset
        self._start(process)

    # -- control plane ----------------------------------------------------------------------------

    def inject_process_kill(self, fault: Fault):
        self._kill(self.world.control[fault.target])

    def heal_process_kill(self, fault: Fault, state) -> None:
        self._start(self.world.control[fault.target])

    def inject_process_pause(self, fault: Fault):
        self.world.control[fault.target].pause()

    def heal_process_pause(self, fault: Fault, state) -> None:
        self.world.control[fault.target].resume()

    def inject_worker_clock(self, fault: Fault):
        self._restart_with_offset(self.world.control[fault.target], fault.params["offset"])

    def heal_worker_clock(self, fault: Fault, state) -> None:
        self._restart_with_offset(self.world.control[fault.target], 0.0)

    def inject_redis_restart(self, fault: Fault):
        """Without a snapshot: Redis dies now and comes back empty. With one: a snapshot now, and
        at heal Redis dies and comes back from it (stale grants and fences)."""
        if fault.params["snapshot"]:
            redis.Redis.from_url(self.world.redis_url, socket_timeout=5).save()
        else:
            self.world.redis.kill()

    def heal_redis_restart(self, fault: Fault, state) -> None:
        dump = self.world.run_dir / "redis" / "dump.rdb"
        if fault.params["snapshot"]:
            self.world.redis.kill()
        else:
            dump.unlink(missing_ok=True)
        self._start(self.world.redis)
        wait_redis(self.world.redis_url, 10)

    def inject_postgres_restart(self, fault: Fault):
        postgres.stop(fault.params["mode"])

    def heal_postgres_restart(self, fault: Fault, state) -> None:
        postgres.start()

    # -- operator ---------------------------------------------------------------------------------

    def _edit(self, fault: Fault, changes: dict[str, Any], restore: bool = False) -> None:
        """What a PATCH /api/v1/clusters/<id>/ does: the API's serializer on a fresh row. Restoring
        a setting that the API refuses falls back to the ORM, so the campaign ends at the defaults."""
        cluster = Cluster.objects.select_related("primary", "secondary").get(pk=self.world.clusters[fault.target])
        serializer = ClusterSerializer(cluster, data=changes, partial=True)
        if serializer.is_valid():
            serializer.save()
            self.history("operator", id=fault.id, cluster=fault.target, action="edit", changes=changes, outcome="saved")
            return
        self.history("operator", id=fault.id, cluster=fault.target, action="edit", changes=changes,
                     outcome="refused", reasons=serializer.errors)  # fmt: skip
        if restore:
            Cluster.objects.filter(pk=cluster.pk).update(**changes)

    def inject_settings_change(self, fault: Fault):
        self._edit(fault, {"heartbeat_interval": fault.params["heartbeat_interval"]})

    def heal_settings_change(self, fault: Fault, state) -> None:
        self._edit(fault, {"heartbeat_interval": DEFAULT_INTERVAL}, restore=True)

    def inject_maintenance(self, fault: Fault):
        self._edit(fault, {"maintenance": True})

    def heal_maintenance(self, fault: Fault, state) -> None:
        self._edit(fault, {"maintenance": False}, restore=True)

    def inject_switchover(self, fault: Fault):
        outcome = actions.start_switchover(self.world.clusters[fault.target], operator_request())
        self.history("operator", id=fault.id, cluster=fault.target, action="switchover",
                     outcome=outcome.status or "refused", reasons=outcome.reasons)  # fmt: skip

    def inject_replicate(self, fault: Fault):
        cluster = Cluster.objects.get(pk=self.world.clusters[fault.target])
        outcome = actions.queue_replication(cluster, operator_request())
        self.history("operator", id=fault.id, cluster=fault.target, action="replicate", outcome=outcome.status)


def wait_redis(url: str, timeout: float) -> None:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def operator_request():
    """What the API's action views hand `cluster.actions`: a request by an operator (the audit log
    names it), here the campaign's own user."""
    user, _ = get_user_model().objects.get_or_create(username="nemesis-operator")
    request = RequestFactory().post("/api/v1/clusters/", HTTP_USER_AGENT="dms-nemesis/1")
    request.user = user
    return request
