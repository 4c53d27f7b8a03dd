"""The commands. Each reads or acts through the API and returns what to print (human text, or the
data for --json); failures are CliErrors carrying their exit code."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from . import output
from .client import Api
from .errors import REFUSED, TIMEOUT, USAGE, CliError

CLUSTERS, SERVERS, EVENTS = "/api/v1/clusters/", "/api/v1/servers/", "/api/v1/events/"
INCIDENT_TYPES = [
    "server_failed",
    "server_recovered",
    "critical_service_failed",
    "critical_service_recovered",
    "failover_completed",
    "failover_failed",
    "failover_abandoned",
    "switchover_completed",
    "switchover_failed",
]
SWITCHOVER_OUTCOMES = ["switchover_completed", "switchover_failed", "failover_abandoned"]
POLL_S = 0.5


def find_cluster(api: Api, name_or_id: str) -> dict:
    """A cluster by id or exact name."""
    if name_or_id.isdigit():
        try:
            return api.get(f"{CLUSTERS}{name_or_id}/")
        except CliError as error:
            if error.code == USAGE:
                raise CliError(USAGE, f"no cluster with id {name_or_id}") from None
            raise
    matches = [c for c in api.get_all(CLUSTERS, {"name": name_or_id}) if c["name"] == name_or_id]
    if not matches:
        raise CliError(USAGE, f"no cluster named {name_or_id!r} (`dmsctl list` shows them)")
    return matches[0]


def cluster_list(api: Api, as_json: bool):
    clusters = api.get_all(CLUSTERS)
    names = {s["id"]: s["name"] for s in api.get_all(SERVERS)}
    if as_json:
        return clusters
    rows = [
        [
            c["id"],
            c["name"],
            c["application"],
            c["state"],
            c["epoch"],
            names.get(c["primary"]),
            names.get(c["secondary"]),
            output.on_off(c["maintenance"]),
            c["replication"]["state"],
            _lag(c["replication"]["lag_s"]),
        ]
        for c in clusters
    ]
    headers = ["ID", "NAME", "APP", "STATE", "EPOCH", "PRIMARY", "SECONDARY", "MAINT", "REPLICATION", "LAG"]
    return output.table(headers, rows) if rows else "No clusters."


def _lag(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f} s"


def status(api: Api, name_or_id: str, as_json: bool):
    cluster = find_cluster(api, name_or_id)
    servers = {slot: api.get(f"{SERVERS}{cluster[slot]}/") for slot in ("primary", "secondary")}
    for server in servers.values():
        server["heartbeat_age_s"] = output.age_s(server["last_heartbeat_at"])
    events = api.get(EVENTS, {"cluster": cluster["id"], "type": INCIDENT_TYPES, "page_size": 5})["results"]
    if as_json:
        return {"cluster": cluster, "servers": servers, "events": events}
    return _status_text(cluster, servers, events)


def _status_text(cluster: dict, servers: dict, events: list[dict]) -> str:
    failover = cluster["failover"]
    if failover["step"]:
        in_progress = f"in progress: step {failover['step']}, pending epoch {failover['pending_epoch']}"
        claimed = f", claimed until {output.local_time(failover['claimed_until'])}" if failover["claimed_until"] else ""
        failover_line = in_progress + claimed
    else:
        failover_line = f"idle; last {output.local_time(cluster['last_failover_at'])}"
    replication = cluster["replication"]
    interval = cluster["heartbeat_interval"]
    threshold = cluster["missed_heartbeats_threshold"]
    lines = [
        f"Cluster {cluster['name']} (id {cluster['id']}, {cluster['application']})",
        f"  State        {cluster['state']}, epoch {cluster['epoch']}, "
        f"maintenance {output.on_off(cluster['maintenance'])}, {'active' if cluster['active'] else 'not active yet'}",
        f"  Timing       heartbeat every {interval:g} s, failover after {threshold} missed ({interval * threshold:g} s)"
        f", lease {cluster['lease_s']:g} s",
        f"  Failover     {failover_line}",
        f"  Replication  last job {replication['state']}, lag {_lag(replication['lag_s'])}"
        f"{' (current)' if replication['current'] else ' (not current)'}",
        "",
        output.table(
            ["SLOT", "SERVER", "ROLE", "STATE", "LAST HEARTBEAT"],
            [
                [slot, s["name"], _shown_role(slot, s, cluster), s["state"], output.age(s["heartbeat_age_s"])]
                for slot, s in servers.items()
            ],
        ),
        "",
        "Last failover and incident events:",
        _events_table(list(reversed(events))) if events else "  none",
    ]
    return "\n".join(lines)


def _shown_role(slot: str, server: dict, cluster: dict) -> str:
    """As the pages say it (cluster/display.py): after a failover the old primary's agent last said
    "primary"; in the secondary slot it is the former primary, which no grant reaches."""
    if server["role"] == "primary" and slot != "primary":
        return f"former primary, fenced at epoch {cluster['epoch']}"
    return server["role"]


def _events_table(events: list[dict]) -> str:
    rows = [
        [
            e["id"],
            output.local_time(e["created_at"]),
            e["severity"],
            e["type"],
            e["cluster_name"],
            e["server_name"],
            e["acknowledged_by"] or ("" if e["acknowledged_at"] is None else "yes"),
            e["message"],
        ]
        for e in events
    ]
    return output.table(["ID", "TIME", "SEVERITY", "TYPE", "CLUSTER", "SERVER", "ACK", "MESSAGE"], rows)


def _newest_event_id(api: Api, cluster_id: int) -> int:
    results = api.get(EVENTS, {"cluster": cluster_id, "page_size": 1})["results"]
    return results[0]["id"] if results else 0


def switchover(api: Api, name_or_id: str, as_json: bool, wait: bool, timeout: float):
    cluster = find_cluster(api, name_or_id)
    since = _newest_event_id(api, cluster["id"])
    started = api.post(f"{CLUSTERS}{cluster['id']}/switchover/")
    if not wait:
        return started if as_json else f"Switchover of {cluster['name']} started (not waiting for its outcome)."
    outcome = _wait_for_outcome(api, cluster["id"], since, timeout)
    if outcome is None:
        message = f"switchover of {cluster['name']}: no outcome within {timeout:g} s (see `dmsctl events`)"
        raise CliError(TIMEOUT, message)
    if outcome["type"] != "switchover_completed":
        raise CliError(REFUSED, f"switchover of {cluster['name']} did not complete: {outcome['message']}")
    return outcome if as_json else f"Switchover of {cluster['name']} completed: {outcome['message']}"


def _wait_for_outcome(api: Api, cluster_id: int, since: int, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = api.get(EVENTS, {"cluster": cluster_id, "type": SWITCHOVER_OUTCOMES, "page_size": 10})["results"]
        mine = [
            e
            for e in events
            if e["id"] > since and (e["type"] != "failover_abandoned" or e["details"].get("cause") == "switchover")
        ]
        if mine:
            return min(mine, key=lambda e: e["id"])
        time.sleep(POLL_S)
    return None


def maintenance(api: Api, name_or_id: str, state: str, as_json: bool):
    cluster = find_cluster(api, name_or_id)
    updated = api.post(f"{CLUSTERS}{cluster['id']}/maintenance/", {"maintenance": state == "on"})
    if as_json:
        return updated
    return f"Maintenance {output.on_off(updated['maintenance'])} for cluster {updated['name']}."


def events(
    api: Api,
    as_json: bool,
    cluster: str | None,
    severities: list[str],
    types: list[str],
    limit: int,
    follow: bool,
    interval: float,
    emit: Callable[[str], None],
):
    query: dict = {"page_size": limit}
    if cluster:
        query["cluster"] = find_cluster(api, cluster)["id"]
    if severities:
        query["severity"] = severities
    if types:
        query["type"] = types
    rows = list(reversed(api.get(EVENTS, query)["results"]))
    if not follow:
        if as_json:
            return rows
        return _events_table(rows) if rows else "No events."
    _follow(api, query, rows, as_json, interval, emit)
    return None


def _follow(api: Api, query: dict, rows: list[dict], as_json: bool, interval: float, emit) -> None:
    """Print what is there, then each new event as it comes (one JSON object a line with --json),
    until interrupted."""
    last = rows[-1]["id"] if rows else 0
    _emit_events(rows, as_json, emit, header=True)
    while True:
        time.sleep(interval)
        new = _newer_than(api, {**query, "page_size": 100}, last)
        if new:
            last = new[-1]["id"]
            _emit_events(new, as_json, emit, header=False)


def _newer_than(api: Api, query: dict, last: int) -> list[dict]:
    page = api.get(EVENTS, query)
    found = [e for e in page["results"] if e["id"] > last]
    while page.get("next") and page["results"] and page["results"][-1]["id"] > last:
        page = api.request("GET", page["next"])
        found += [e for e in page["results"] if e["id"] > last]
    return sorted(found, key=lambda e: e["id"])


def _emit_events(rows: list[dict], as_json: bool, emit, header: bool) -> None:
    if as_json:
        for row in rows:
            emit(output.json.dumps(row, sort_keys=True))
        return
    if not rows:
        return
    text = _events_table(rows)
    emit(text if header else "\n".join(text.splitlines()[1:]))


def acknowledge(api: Api, event_ids: list[int], as_json: bool):
    done = []
    for event_id in event_ids:
        try:
            done.append(api.post(f"{EVENTS}{event_id}/acknowledge/"))
        except CliError as error:
            if error.code == USAGE:
                raise CliError(USAGE, f"no event {event_id}") from None
            raise
    if as_json:
        return done
    return "\n".join(
        f"Event {e['id']} ({e['type']}) acknowledged by {e['acknowledged_by']} "
        f"at {output.local_time(e['acknowledged_at'])}."
        for e in done
    )


def stdout_line(text: str) -> None:
    print(text, flush=True)
    sys.stdout.flush()
