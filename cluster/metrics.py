"""Prometheus metrics for /metrics (DESIGN §6).

Probes and failovers happen in Celery worker processes while /metrics is served by the web app,
so counters and histogram buckets are kept in Redis (HINCRBYs) and read back by
a collector at scrape time; roles and states come from the database.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from dms_admin.redis import redis_client

from .models import Cluster, Server

KEY = "dms:metrics"
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FAILOVER_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 60.0)


def _observe(pipe, name: str, buckets: tuple[float, ...], values: list[float]) -> None:
    """Histogram observations: one HINCRBY per bucket for all the values, not one per value."""
    if not values:
        return
    for bound in buckets:
        count = sum(1 for value in values if value <= bound)
        if count:
            pipe.hincrby(KEY, f"{name}_bucket:{bound}", count)
    pipe.hincrby(KEY, f"{name}_bucket:+Inf", len(values))
    pipe.hincrbyfloat(KEY, f"{name}_sum", sum(values))


def record_probes(results: dict[str, int], latencies: list[float]) -> None:
    """One batch's probe outcomes (answered / intranet_only / missed) and latencies, in one round trip."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        for result, count in results.items():
            if count:
                pipe.hincrby(KEY, f"probes:{result}", count)
        _observe(pipe, "probe_latency", PROBE_BUCKETS, latencies)
        pipe.execute()
    except Exception:  # metrics never break heartbeats
        pass


def record_failover(outcome: str, cause: str, duration: float | None = None) -> None:
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.hincrby(KEY, f"failovers:{outcome}:{cause}", 1)
        if duration is not None:
            _observe(pipe, "failover_duration", FAILOVER_BUCKETS, [duration])
        pipe.execute()
    except Exception:
        pass


class ClusterCollector:
    def collect(self):
        stored: dict[bytes, bytes] = redis_client().hgetall(KEY)  # type: ignore[assignment]  # bytes: no decoding
        raw = {k.decode(): v.decode() for k, v in stored.items()}
        probes = CounterMetricFamily("dms_heartbeat_probes", "Heartbeat probes by result.", labels=["result"])
        failovers = CounterMetricFamily(
            "dms_failovers", "Failovers and switchovers by outcome and cause.", labels=["outcome", "cause"]
        )
        for key, value in raw.items():
            if key.startswith("probes:"):
                probes.add_metric([key.split(":", 1)[1]], float(value))
            elif key.startswith("failovers:"):
                _, outcome, cause = key.split(":", 2)
                failovers.add_metric([outcome, cause], float(value))
        yield probes
        yield failovers
        yield _histogram(raw, "probe_latency", PROBE_BUCKETS, "dms_heartbeat_probe_latency_seconds", "Probe latency.")
        yield _histogram(
            raw, "failover_duration", FAILOVER_BUCKETS, "dms_failover_duration_seconds", "Claim to commit."
        )
        roles = GaugeMetricFamily(
            "dms_server_info", "Role and state of each appliance.", labels=["server", "role", "state"]
        )
        for name, role, state in Server.objects.values_list("name", "role", "state"):
            roles.add_metric([name, role, state], 1)
        yield roles
        clusters = GaugeMetricFamily(
            "dms_cluster_epoch", "Epoch of each cluster, by state.", labels=["cluster", "state"]
        )
        for name, state, epoch in Cluster.objects.values_list("name", "state", "epoch"):
            clusters.add_metric([name, state], epoch)
        yield clusters


def _histogram(raw, name, buckets, metric, documentation):
    values = [(str(b), float(raw.get(f"{name}_bucket:{b}", 0))) for b in buckets]
    values.append(("+Inf", float(raw.get(f"{name}_bucket:+Inf", 0))))
    family = HistogramMetricFamily(metric, documentation)
    family.add_metric([], values, sum_value=float(raw.get(f"{name}_sum", 0)))
    return family
