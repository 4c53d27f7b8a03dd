"""Benchmark instrumentation for the heartbeat worker, loaded with `celery worker -I bench.probe_hooks`.

It changes no behaviour: it wraps `cluster.metrics.record_probes` to keep every probe latency (a
Redis list, for exact percentiles; the product's histogram has coarse buckets) and
`cluster.heartbeat.batch.evaluate_counted` to count the grants the primaries refused (e.g. sent_at older than
max_grant_delay when they arrive), and times each task with Celery's signals.
"""

from __future__ import annotations

import cProfile
import os
import re
import time

from celery.signals import task_postrun, task_prerun, worker_process_shutdown

from cluster import metrics
from cluster.heartbeat import batch
from dms_admin.redis import redis_client

LATENCIES = "bench:hb:lat"
STATS = "bench:hb"

_record_probes = metrics.record_probes
_evaluate_counted = batch.evaluate_counted
_started: dict[str, tuple[float, float]] = {}
# BENCH_PROFILE=FILE: the worker's tasks of the measured seconds (while bench/heartbeat.py holds
# PROFILING in Redis) run under cProfile, the stats written to FILE at shutdown.
PROFILING = "bench:hb:profiling"
PROFILE_TO = os.environ.get("BENCH_PROFILE")
_profiler = cProfile.Profile() if PROFILE_TO else None


def record_probes(results, latencies):
    _record_probes(results, latencies)
    if latencies:
        redis_client().rpush(LATENCIES, *(f"{x:.6f}" for x in latencies))


def evaluate_counted(state, counted, *args, **kwargs):
    _evaluate_counted(state, counted, *args, **kwargs)
    sent = refused = 0
    reasons: dict[str, int] = {}
    for probe in counted.probes:
        answer = probe.primary.answer
        if probe.grant.get("lease_s", 0) > 0 and answer is not None:
            sent += 1
            if answer.body.get("grant_accepted") is False:
                refused += 1
                reason = re.sub(r"\d+\.\d+", "#", str(answer.body.get("grant_refused_reason")))[:60]
                reasons[reason] = reasons.get(reason, 0) + 1
    pipe = redis_client().pipeline(transaction=False)
    pipe.hincrby(STATS, "grants_sent", sent)
    pipe.hincrby(STATS, "grants_refused", refused)
    for reason, count in reasons.items():
        pipe.hincrby(STATS, f"refused:{reason}", count)
    pipe.execute()


@task_prerun.connect
def _prerun(task_id=None, task=None, **_):
    _started[task_id] = (time.perf_counter(), time.process_time())
    if _profiler is not None and redis_client().exists(PROFILING):
        _profiler.enable()


@task_postrun.connect
def _postrun(task_id=None, task=None, retval=None, args=None, **_):
    if _profiler is not None:
        _profiler.disable()
    wall, cpu = _started.pop(task_id, (time.perf_counter(), time.process_time()))
    name = task.name.rsplit(".", 1)[-1] if task else "?"
    if name == "probe_batch" and args:
        print(
            f"BATCH slot {args[1]} first {args[2][0]} wall {time.perf_counter() - wall:.3f} "
            f"cpu {time.process_time() - cpu:.3f} -> {retval}",
            flush=True,
        )
    pipe = redis_client().pipeline(transaction=False)
    pipe.hincrbyfloat(STATS, f"{name}:busy_s", time.perf_counter() - wall)
    pipe.hincrbyfloat(STATS, f"{name}:cpu_s", time.process_time() - cpu)
    pipe.hincrby(STATS, f"{name}:{'stale' if retval == 'stale' else 'runs'}", 1)
    pipe.execute()


@worker_process_shutdown.connect
def _write_profile(**_):
    if _profiler is not None:
        _profiler.dump_stats(PROFILE_TO)


metrics.record_probes = record_probes
batch.evaluate_counted = evaluate_counted
