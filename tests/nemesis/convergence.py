"""The quiet tail: once every fault has healed and every process is back, each cluster must converge —
the database and the agents agree (the row's primary holds the primary role at the row's epoch, its
secondary the secondary role), exactly one appliance, the row's primary, answers 200 on
`GET /v1/primary`, and the control plane counts both appliances' answers again (a control plane that
stopped counting cannot see the next failure) — within detection + lease + 10 s of its timing; and
every failure event must get its recovery event. What the tail saw is recorded in the history for the checkers.
"""

from __future__ import annotations

import http.client
import ssl
import time
from typing import Any

from django.db import close_old_connections

from agent.storage import read_json
from alerts.choices import RECOVERY_OF
from alerts.models import Event
from cluster.heartbeat.state import HeartbeatState
from cluster.models import Cluster
from tests.nemesis.history import History
from tests.nemesis.processes import AGENT_PORT, Agent

SLACK_S = 10.0
STABLE_POLLS = 3  # consecutive agreeing polls, 0.5 s apart, before a cluster counts as converged
POLL_S = 0.5
COUNTED_WITHIN_SLOTS = 2.5  # a slot is counted when its probes are answered, up to an interval late


def bound_s(cluster: Cluster) -> float:
    detection = cluster.heartbeat_interval * cluster.missed_heartbeats_threshold
    return detection + cluster.effective_lease_s + SLACK_S


def primary_status(agent: Agent, context: ssl.SSLContext) -> int | None:
    connection = http.client.HTTPSConnection(agent.host.address("hb"), AGENT_PORT, timeout=1, context=context)
    try:
        connection.request("GET", "/v1/primary")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def observe(cluster: Cluster, agents: dict[str, Agent], context: ssl.SSLContext) -> tuple[bool, dict[str, Any]]:
    primary, secondary = agents[cluster.primary.name], agents[cluster.secondary.name]
    seen: dict[str, Any] = {"db": f"{cluster.state} primary {primary.name} epoch {cluster.epoch}"}
    for agent in (primary, secondary):
        state = read_json(agent.state_dir / "state.json") or {}
        seen[agent.name] = (state.get("role"), state.get("epoch"), primary_status(agent, context))
    # The last answer the heartbeat counting recorded for each appliance, in slots.
    server_ids = [cluster.primary_id, cluster.secondary_id]
    answered, now = HeartbeatState().last_answers(server_ids), time.time()
    interval = cluster.heartbeat_interval
    ages = [round((now - answered[pk]) / interval, 1) if pk in answered else None for pk in server_ids]
    seen["slots since the last counted answer"] = ages
    ok = (
        all(age is not None and age <= COUNTED_WITHIN_SLOTS for age in ages)
        and cluster.state != "failing_over"
        and seen[primary.name] == ("primary", cluster.epoch, 200)
        and seen[secondary.name][0] == "secondary"
        and seen[secondary.name][2] != 200
    )
    return ok, seen


def await_convergence(history: History, clusters: dict[str, dict[str, Any]], context: ssl.SSLContext) -> None:
    started = time.monotonic()
    agreeing = dict.fromkeys(clusters, 0)
    pending = set(clusters)
    last_seen: dict[str, dict] = {}
    while pending:
        close_old_connections()
        for name in sorted(pending):
            row = Cluster.objects.select_related("primary", "secondary").get(pk=clusters[name]["pk"])
            ok, last_seen[name] = observe(row, clusters[name]["agents"], context)
            agreeing[name] = agreeing[name] + 1 if ok else 0
            elapsed = time.monotonic() - started
            if agreeing[name] >= STABLE_POLLS:
                history("convergence", cluster=name, converged=True, after_s=round(elapsed, 1), bound_s=bound_s(row))
                pending.discard(name)
            elif elapsed > bound_s(row):
                history("convergence", cluster=name, converged=False, bound_s=bound_s(row), observed=last_seen[name])
                pending.discard(name)
        time.sleep(POLL_S)


def await_recoveries(history: History, clusters: dict[str, dict[str, Any]], timeout: float) -> None:
    """Every failure event of each cluster closed by its recovery, within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        close_old_connections()
        open_failures = {
            name: list(
                Event.objects.filter(cluster_id=cluster["pk"], type__in=list(RECOVERY_OF), recovered_by__isnull=True)
                .order_by("id")
                .values_list("type", "server__name", "created_at")
            )
            for name, cluster in clusters.items()
        }
        if not any(open_failures.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    for name, missing in open_failures.items():
        described = [f"{kind} of {server or 'the cluster'} at {created:%H:%M:%S}" for kind, server, created in missing]
        history("recovery", cluster=name, missing=described)
