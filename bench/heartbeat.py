"""Heartbeat throughput of ONE heartbeat worker process, against the same load as one Celery task
per probe.

Simulated appliances (`python -m agent.simulate --primaries`; the odd-numbered ones are then sent
`secondary` at epoch 1 so that each cluster is a primary and a secondary answering as such), and
rows created with bulk_create (state healthy, active, servers up). The product path runs for real:
beat → `dispatch_heartbeats` → `probe_batch` in one worker (`-Q heartbeat -c 1`), which also runs
the dispatcher, as in production. Probes are counted from the product's `dms:metrics` hash;
`bench/probe_hooks.py` (loaded with `-I`) keeps every probe latency and the worker's busy time.

`BENCH_PROFILE=FILE` writes the worker's cProfile stats of the measured seconds to FILE.

Then the baseline: the same appliances probed by `bench.probe_per_task.probe_one`, one task per
probe, in one worker (`-c 1`) fed from a pre-filled queue.

    .venv/bin/python bench/heartbeat.py [--appliances 1000,10000] [--interval 1] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    Proc,
    celery_beat,
    celery_worker,
    load_note,
    log_dir,
    percentile,
    prepare,
    process_env,
    wait_until,
)

TOKEN = "bench-sim-token"
PROFILING = "bench:hb:profiling"  # bench/probe_hooks.py profiles while this key is set (BENCH_PROFILE)
TARGET_RATE = 5000.0
TARGET_RATIO = 10.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulators(logs: Path, appliances: int, count: int) -> tuple[list[tuple[int, int]], list[Proc]]:
    """Returns (port, appliances) per simulator process, and the processes."""
    per = -(-appliances // count)
    sims, procs = [], []
    for k in range(count):
        n = min(per, appliances - k * per)
        port = free_port()
        args = [sys.executable, "-m", "agent.simulate", "--count", str(n), "--port", str(port), "--token", TOKEN]
        procs.append(Proc(f"simulate-{k}", [*args, "--primaries"], logs, process_env()).start())
        procs[-1].wait_for_log("serving")
        sims.append((port, n))
    return sims, procs


def urls(sims: list[tuple[int, int]]) -> list[str]:
    return [f"http://127.0.0.1:{port}/a/{i}" for port, n in sims for i in range(n)]


async def _configure_secondaries(secondaries: list[str]) -> list[str]:
    import aiohttp

    body = {"role": "secondary", "epoch": 1, "seq": 2, "interval_s": 1.0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

        async def one(url: str) -> str:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.post(url + "/v1/role", json=body, headers=headers) as response:
                return (await response.json())["role"]

        return await asyncio.gather(*(one(url) for url in secondaries))


async def _sample(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        body = {"epoch": 1, "lease_s": 0, "sent_at": time.time()}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(url + "/v1/heartbeat", json=body, headers=headers) as response:
            return await response.json()


def create_rows(all_urls: list[str], interval: float, threshold: int) -> int:
    from cluster.hardware import EXAMPLE
    from cluster.models import Cluster, Server

    Cluster.objects.all().delete()
    Server.objects.all().delete()
    servers = [
        Server(
            name=f"sim-{i}",
            application="dmm",
            part_number="DMM-FA-C210-K9" if i % 2 else "DMM-SVR-C210-K9",
            hardware=copy.deepcopy(EXAMPLE),
            heartbeat_url=url,
            intranet_url=url,
            agent_token=TOKEN,
            role="secondary" if i % 2 else "primary",
            state="up",
        )
        for i, url in enumerate(all_urls)
    ]
    Server.objects.bulk_create(servers, batch_size=1000)
    by_name = dict(Server.objects.values_list("name", "id"))
    clusters = [
        Cluster(
            name=f"sim-cluster-{j}",
            application="dmm",
            primary_id=by_name[f"sim-{2 * j}"],
            secondary_id=by_name[f"sim-{2 * j + 1}"],
            heartbeat_interval=interval,
            missed_heartbeats_threshold=threshold,
            state="healthy",
            active=True,
        )
        for j in range(len(all_urls) // 2)
    ]
    Cluster.objects.bulk_create(clusters, batch_size=1000)  # bypasses save(): no configure_cluster
    return len(clusters)


def metrics_snapshot(redis) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in redis.hgetall("dms:metrics").items()}


def stats_snapshot(redis) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in redis.hgetall("bench:hb").items()}


def run_product(logs: Path, redis, appliances: int, interval: float, warmup: float, seconds: float) -> dict:
    hooks = ["-I", "bench.probe_hooks"]
    worker = celery_worker(logs, "heartbeat", f"heartbeat-{appliances}", concurrency=1, extra=hooks)
    beat = celery_beat(logs)
    try:
        # A server's first probe loads its open incidents from the database, once per worker; the
        # figures are for the steady state after every server has been probed once.
        started = time.monotonic()
        loaded = wait_until(
            lambda: (n := len(redis.keys("dms:srv:*"))) >= appliances and n,
            timeout=max(warmup, 180),
            interval=1.0,
            message=f"every one of the {appliances} appliances probed once",
        )
        time.sleep(max(0.0, warmup - (time.monotonic() - started)))
        print(f"  warm-up: {loaded} appliances probed once after {time.monotonic() - started:.0f} s", flush=True)
        redis.delete("bench:hb:lat")
        m0, s0, t0 = metrics_snapshot(redis), stats_snapshot(redis), time.monotonic()
        redis.set(PROFILING, 1)
        time.sleep(seconds)
        redis.delete(PROFILING)
        m1, s1, t1 = metrics_snapshot(redis), stats_snapshot(redis), time.monotonic()
        latencies = [float(x) for x in redis.lrange("bench:hb:lat", 0, -1)]
    finally:
        beat.stop()
        worker.stop()
    elapsed = t1 - t0

    def delta(a, b, key):
        return b.get(key, 0.0) - a.get(key, 0.0)

    results = {k: delta(m0, m1, f"probes:{k}") for k in ("answered", "intranet_only", "missed")}
    probes = sum(results.values())
    busy = delta(s0, s1, "probe_batch:busy_s")
    dispatch_busy = delta(s0, s1, "dispatch_heartbeats:busy_s")
    return {
        "elapsed": elapsed,
        "probes": probes,
        "results": results,
        "rate": probes / elapsed,
        "offered": appliances / interval,
        "busy": busy,
        "dispatch_busy": dispatch_busy,
        "batches": delta(s0, s1, "probe_batch:runs"),
        "stale": delta(s0, s1, "probe_batch:stale"),
        "per_busy_s": probes / busy if busy else float("nan"),
        "cpu": delta(s0, s1, "probe_batch:cpu_s") + delta(s0, s1, "dispatch_heartbeats:cpu_s"),
        "grants_sent": delta(s0, s1, "grants_sent"),
        "grants_refused": delta(s0, s1, "grants_refused"),
        "refusals": {k: v - s0.get(k, 0.0) for k, v in s1.items() if k.startswith("refused:") and v > s0.get(k, 0.0)},
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def run_per_task(logs: Path, redis, all_urls: list[str], seconds: float, prefill: int) -> dict:
    from bench.probe_per_task import COUNT, LATENCIES, QUEUE, probe_one
    from dms_admin.celery import app

    redis.delete(COUNT, LATENCIES)
    with app.producer_or_acquire() as producer:
        for i in range(prefill):
            probe_one.apply_async((all_urls[i % len(all_urls)], TOKEN), queue=QUEUE, producer=producer)
    worker = celery_worker(logs, QUEUE, "per-task", concurrency=1, extra=["-I", "bench.probe_per_task"])
    try:
        time.sleep(3)
        c0, t0 = int(redis.get(COUNT) or 0), time.monotonic()
        redis.delete(LATENCIES)
        time.sleep(seconds)
        c1, t1 = int(redis.get(COUNT) or 0), time.monotonic()
        latencies = [float(x) for x in redis.lrange(LATENCIES, 0, -1)]
    finally:
        worker.stop()
        redis.delete(f"{QUEUE}")  # the rest of the pre-filled queue
    drained = c1 >= prefill
    return {
        "rate": (c1 - c0) / (t1 - t0),
        "probes": c1 - c0,
        "drained": drained,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appliances", default="1000,10000", help="appliance counts (default 1000,10000)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="heartbeat interval, seconds (default 2, the product's)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default 20)")
    parser.add_argument(
        "--warmup", type=float, default=8.0, help="least seconds before measuring, and every appliance probed once"
    )
    parser.add_argument("--threshold", type=int, default=20, help="missed-heartbeat threshold (default 20)")
    parser.add_argument("--simulators", type=int, default=1, help="simulator processes (default 1)")
    parser.add_argument("--per-task-prefill", type=int, default=30000, help="tasks queued for the baseline")
    args = parser.parse_args()
    prepare()
    from dms_admin.redis import redis_client

    redis = redis_client()
    logs = log_dir("bench-heartbeat")
    print(f"logs under {logs}; {load_note()}", flush=True)
    rows = []
    try:
        for appliances in [int(x) for x in args.appliances.split(",")]:
            redis.flushdb()
            sim_logs = logs / f"n{appliances}"
            sims, sim_procs = start_simulators(sim_logs, appliances, args.simulators)
            all_urls = urls(sims)
            roles = asyncio.run(_configure_secondaries(all_urls[1::2]))
            assert set(roles) == {"secondary"}, set(roles)
            primary_answer, secondary_answer = asyncio.run(_sample(all_urls[0])), asyncio.run(_sample(all_urls[1]))
            print(
                f"\n{appliances} appliances: primary answers role {primary_answer['role']} epoch "
                f"{primary_answer['epoch']}; secondary answers role {secondary_answer['role']} epoch "
                f"{secondary_answer['epoch']}, peer {secondary_answer.get('peer')}",
                flush=True,
            )
            clusters = create_rows(all_urls, args.interval, args.threshold)
            product = run_product(sim_logs, redis, appliances, args.interval, args.warmup, args.seconds)
            baseline = run_per_task(sim_logs, redis, all_urls, args.seconds, args.per_task_prefill)
            for proc in sim_procs:
                proc.stop()
            ratio = product["rate"] / baseline["rate"] if baseline["rate"] else float("inf")
            capacity_ratio = product["per_busy_s"] / baseline["rate"] if baseline["rate"] else float("inf")
            rows.append((appliances, clusters, product, baseline, ratio, capacity_ratio))
            print_row(appliances, clusters, args.interval, product, baseline, ratio, capacity_ratio)
            print(f"  ({load_note()})", flush=True)
    finally:
        from bench._common import stop_all

        stop_all()
    return 0


def print_row(appliances, clusters, interval, product, baseline, ratio, capacity_ratio) -> None:
    r = product["results"]
    offered = product["offered"]
    print(f"  {appliances} appliances = {clusters} clusters, interval {interval:g} s (offered {offered:.0f} probes/s)")
    print(
        f"  product path (dispatcher + probe_batch, one worker -c 1): {product['rate']:.0f} probes/s sustained "
        f"over {product['elapsed']:.1f} s (answered {r['answered']:.0f}, intranet_only {r['intranet_only']:.0f}, "
        f"missed {r['missed']:.0f}); p50 {product['p50'] * 1000:.1f} ms, p99 {product['p99'] * 1000:.1f} ms"
    )
    busy = product["busy"] / product["elapsed"]
    print(
        f"    worker busy {busy:.0%} in probe_batch ({product['batches']:.0f} batches, {product['stale']:.0f} stale), "
        f"{product['dispatch_busy'] / product['elapsed']:.1%} in the dispatcher; "
        f"{product['per_busy_s']:.0f} probes per busy second"
    )
    cpu = product["cpu"]
    print(
        f"    worker CPU {cpu:.1f} s in {product['elapsed']:.0f} s ({cpu / product['elapsed']:.0%} of one core): "
        f"{product['probes'] / cpu if cpu else float('nan'):.0f} probes per CPU-second (the capacity of one "
        f"process if the appliances answered at once)"
    )
    coverage = product["probes"] / (product["offered"] * product["elapsed"])
    print(
        f"    slot coverage {coverage:.1%} (probes made / probes due: the rest of the batches expired in the queue "
        f"and were discarded unprobed)"
    )
    print(
        f"    grants sent {product['grants_sent']:.0f}, refused by the primaries {product['grants_refused']:.0f} "
        f"{product['refusals'] or ''}"
    )
    print(
        f"  one task per probe (one worker -c 1): {baseline['rate']:.0f} probes/s; "
        f"p50 {baseline['p50'] * 1000:.1f} ms, "
        f"p99 {baseline['p99'] * 1000:.1f} ms{' (QUEUE DRAINED: rate is a lower bound)' if baseline['drained'] else ''}"
    )
    print(
        f"  ratio {ratio:.1f}× sustained ({capacity_ratio:.1f}× per busy second); "
        f"targets ≥ {TARGET_RATE:.0f} probes/s: "
        f"{'MET' if product['rate'] >= TARGET_RATE else 'MISSED'}, ≥ {TARGET_RATIO:.0f}×: "
        f"{'MET' if ratio >= TARGET_RATIO else 'MISSED'}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
