"""The demo's four dms-agents: how each is started, and the two commands a user runs on them
(`kill-primary`, `start-agent`). The agents' names, ports, tokens and folders are in `demo.json`,
written by `manage.py seed_demo`."""

from __future__ import annotations

import os
import signal
import sys
import time

from cluster.models import Cluster
from demo.processes import HOST, http_answers, signal_group, start_process
from demo.run_folder import LOGS, RUN, demo_cmd, load_agents, read_pid, rel


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


def kill_primary(cluster_name: str) -> int:
    """SIGKILL the agent that is the cluster's primary now (the database says which: after a
    failover it is the other one)."""
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
    """Start a demo agent again (after `kill-primary`) while the demo runs; the demo stops it too."""
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
