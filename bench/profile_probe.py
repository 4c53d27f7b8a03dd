"""Where a heartbeat batch's time goes: `cluster.tasks.probe_batch` called in-process (no Celery),
against simulated appliances, timed and profiled with cProfile.

Same rows as bench/heartbeat.py (bulk_create, a primary and a secondary per cluster, all virtual
appliances of one simulator). Prints probes per second of one process and the top functions.

    .venv/bin/python bench/profile_probe.py [--appliances 1000] [--batches 20] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import math
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import log_dir, prepare, stop_all  # noqa: E402
from bench.heartbeat import _configure_secondaries, create_rows, start_simulators, urls  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appliances", type=int, default=1000, help="appliances (2 per cluster; default 1000)")
    parser.add_argument("--batches", type=int, default=20, help="batches timed (default 20)")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    prepare()
    from cluster.heartbeat.batch import BATCH
    from cluster.heartbeat.state import HeartbeatState
    from cluster.models import Cluster
    from cluster.tasks import probe_batch

    logs = log_dir("bench-profile")
    try:
        sims, _ = start_simulators(logs, args.appliances, 1)
        all_urls = urls(sims)
        asyncio.run(_configure_secondaries(all_urls[1::2]))
        create_rows(all_urls, args.interval, 20)
        ids = list(Cluster.objects.order_by("id").values_list("id", flat=True))
        state = HeartbeatState()
        for cluster_id in ids:
            state.load_fence(cluster_id, 1)
        batches = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]

        def run(count: int) -> tuple[int, float]:
            probes, start = 0, time.perf_counter()
            for _ in range(count):
                slot = math.floor(time.time() / args.interval)
                for batch in batches:
                    probe_batch.run(args.interval, slot, batch)
                    probes += 2 * len(batch)
                # the next slot: each (server, slot) is counted once
                time.sleep(max(0.0, (slot + 1) * args.interval - time.time()))
            return probes, time.perf_counter() - start

        run(2)  # warm-up: incidents loaded from the database once per server
        busy = cpu = 0.0
        probes = 0
        for _ in range(args.batches):
            slot = math.floor(time.time() / args.interval)
            start, start_cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                probe_batch.run(args.interval, slot, batch)
                probes += 2 * len(batch)
            busy += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            time.sleep(max(0.0, (slot + 1) * args.interval - time.time()))
        print(
            f"{args.appliances} appliances, {len(batches)} batch(es) of ≤ {BATCH} clusters per slot, "
            f"{args.batches} slots, no profiler: {probes} probes in {busy:.2f} s busy, {cpu:.2f} s CPU → "
            f"{probes / busy:.0f} probes per busy second, {probes / cpu:.0f} per CPU-second of one process",
            flush=True,
        )
        from dms_admin.redis import redis_client

        counted = {k.decode(): int(v) for k, v in redis_client().hgetall("dms:metrics").items() if b"probes:" in k}
        print(f"  outcomes so far (warm-up included): {counted}", flush=True)
        profiler = cProfile.Profile()
        busy = 0.0
        probes = 0
        for _ in range(args.batches):
            slot = math.floor(time.time() / args.interval)
            start = time.perf_counter()
            profiler.enable()
            for batch in batches:
                probe_batch.run(args.interval, slot, batch)
                probes += 2 * len(batch)
            profiler.disable()
            busy += time.perf_counter() - start
            time.sleep(max(0.0, (slot + 1) * args.interval - time.time()))
        print(
            f"{args.appliances} appliances, {len(batches)} batch(es) of ≤ {BATCH} clusters per slot, "
            f"{args.batches} slots: {probes} probes in {busy:.2f} s busy → {probes / busy:.0f} probes per busy second "
            f"(under cProfile: slower than without)"
        )
        print(by_package(pstats.Stats(profiler)))
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
        stats.print_stats(args.top)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
    finally:
        stop_all()
    return 0


def by_package(stats: pstats.Stats) -> str:
    """Own time summed per package (aiohttp, redis, django, asyncio, the product's apps…)."""
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
        if "site-packages/" in filename:
            group = filename.split("site-packages/")[1].split("/")[0]
        elif "/work/" in filename or filename.startswith(str(Path(__file__).resolve().parents[1])):
            group = Path(filename).parent.name + "/" + Path(filename).name
        elif "/lib/python3" in filename:
            group = "stdlib:" + filename.split("/lib/python3.11/")[-1].split("/")[0]
        else:
            group = filename  # built-ins, e.g. {method 'send' of '_socket.socket' objects}
        totals[group] = totals.get(group, 0.0) + own
    whole = sum(totals.values()) or 1.0
    rows = sorted(totals.items(), key=lambda item: -item[1])[:25]
    return "own time by package:\n" + "\n".join(f"  {t / whole:6.1%}  {t:6.2f} s  {g}" for g, t in rows)


if __name__ == "__main__":
    raise SystemExit(main())
