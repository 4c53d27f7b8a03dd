"""The fault schedule, drawn from the seed alone: which fault, on what, when and for how long.

The whole schedule is drawn before the campaign starts, from `random.Random(seed)`, the campaign's
length and the names of its clusters, and nothing the system does changes it — so a failing seed
replays the same faults at the same offsets. Two faults never hold the same target at once (a
target is one appliance's network, one appliance's process, one control-plane process, Redis,
PostgreSQL, or one cluster's operator); a draw whose targets are all busy is skipped.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

CONTROL_PROCESSES = ("heartbeat", "failover", "default", "replication", "beat")
CLOCK_WORKERS = ("heartbeat", "failover")
DEFAULT_INTERVAL = 2.0  # the product's default heartbeat interval, restored when a settings change heals
# Kind -> (weight, target class). Weights make network and process faults the bulk, as in the field.
KINDS: dict[str, tuple[float, str]] = {
    "net_drop": (4.0, "net"),
    "net_reject": (2.0, "net"),
    "net_loss": (1.5, "net"),
    "net_duplicate": (0.5, "net"),
    "net_delay": (1.5, "net"),
    "agent_kill": (2.0, "agent"),
    "agent_pause": (2.0, "agent"),
    "agent_wipe": (0.5, "agent"),
    "agent_clock": (1.0, "agent"),
    "process_kill": (1.5, "control"),
    "process_pause": (1.0, "control"),
    "worker_clock": (0.5, "clock_worker"),
    "redis_restart": (0.7, "redis"),
    "postgres_restart": (0.4, "postgres"),
    "settings_change": (1.0, "operator"),
    "switchover": (1.0, "operator"),
    "maintenance": (1.0, "operator"),
    "replicate": (0.5, "operator"),
}
# Seconds between two draws, on average, for one cluster: 4 clusters draw one fault every 5 s
# (~720 an hour, over the 500 of the acceptance).
GAP_PER_CLUSTER_S = 20.0


@dataclass(frozen=True)
class Fault:
    id: int
    at: float  # seconds after the fault period starts
    kind: str
    target: str
    duration: float  # seconds until it heals (0: an instant action)
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"#{self.id} {self.kind} {self.target} {self.duration:.1f}s {params}".rstrip()


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """Many short faults and a few long ones."""
    return round(math.exp(rng.uniform(math.log(low), math.log(high))), 2)


def _draw(kind: str, rng: random.Random) -> tuple[float, dict[str, Any]]:
    """Duration and parameters of one fault of `kind`."""
    network = rng.choice(["hb", "in", "both"])
    if kind in ("net_drop", "net_reject"):
        return log_uniform(rng, 1, 30), {"network": network, "direction": rng.choice(["in", "out", "both"])}
    if kind == "net_loss":
        return log_uniform(rng, 2, 30), {"network": network, "percent": rng.randint(10, 70)}
    if kind == "net_duplicate":
        return log_uniform(rng, 2, 30), {"network": network}
    if kind == "net_delay":
        delay = rng.choice([0.02, 0.1, 0.3, 0.6, 1.0])
        return log_uniform(rng, 2, 30), {"network": network, "delay": delay, "jitter": round(rng.uniform(0, delay), 3)}
    if kind in ("agent_kill", "process_kill"):
        return log_uniform(rng, 0.5, 15), {}
    if kind in ("agent_pause", "process_pause"):
        return log_uniform(rng, 0.5, 15), {}
    if kind == "agent_wipe":
        return log_uniform(rng, 1, 5), {}
    if kind == "agent_clock":
        return log_uniform(rng, 10, 60), {"offset": round(rng.choice([-1, 1]) * log_uniform(rng, 0.02, 1.0), 3)}
    if kind == "worker_clock":
        return log_uniform(rng, 10, 40), {"offset": round(rng.choice([-1, 1]) * log_uniform(rng, 0.05, 0.5), 3)}
    if kind == "redis_restart":
        snapshot = rng.random() < 0.5
        return (log_uniform(rng, 2, 20) if snapshot else log_uniform(rng, 0.2, 5)), {"snapshot": snapshot}
    if kind == "postgres_restart":
        return log_uniform(rng, 0.5, 10), {"mode": rng.choice(["fast", "immediate"])}
    if kind == "settings_change":
        return log_uniform(rng, 10, 60), {"heartbeat_interval": rng.choice([1.0, 3.0, 4.0])}
    if kind == "maintenance":
        return log_uniform(rng, 5, 40), {}
    return 0.0, {}  # switchover, replicate: instant


def targets(target_class: str, clusters: list[str]) -> list[str]:
    if target_class in ("net", "agent"):
        return [f"{cluster}-{side}" for cluster in clusters for side in ("a", "b")]
    if target_class == "control":
        return list(CONTROL_PROCESSES)
    if target_class == "clock_worker":
        return list(CLOCK_WORKERS)
    if target_class in ("redis", "postgres"):
        return [target_class]
    return list(clusters)


def draw_schedule(seed: int, seconds: float, clusters: list[str]) -> list[Fault]:
    rng = random.Random(seed)
    kinds, weights = list(KINDS), [weight for weight, _ in KINDS.values()]
    busy_until: dict[str, float] = {}
    faults: list[Fault] = []
    at = rng.expovariate(len(clusters) / GAP_PER_CLUSTER_S)
    while at < seconds:
        kind = rng.choices(kinds, weights)[0]
        target_class = KINDS[kind][1]
        # A worker's clock fault and its kill or pause hold the same process.
        key_class = "control" if target_class == "clock_worker" else target_class
        free = [t for t in targets(target_class, clusters) if busy_until.get(f"{key_class}:{t}", 0) <= at]
        duration, params = _draw(kind, rng)
        if free:
            target = rng.choice(free)
            # An operator action keeps its cluster's operator busy a while (a switchover takes seconds).
            hold = max(duration, 20.0) if target_class == "operator" else duration
            busy_until[f"{key_class}:{target}"] = at + hold + 1.0
            faults.append(Fault(len(faults) + 1, round(at, 2), kind, target, duration, params))
        at += rng.expovariate(len(clusters) / GAP_PER_CLUSTER_S)
    return faults
