"""The alerts browser and GET /api/v1/events/ over 1,000,000 events: p50 / p95 per page kind.

Requests go through Django's test Client in-process (the whole middleware, view, filter, ORM and
template stack, no HTTP socket, no web server): the page and the admin as a logged-in superuser
(session), the API with `Authorization: Token …`. DEBUG is off, as in production.

Pages measured, each `--requests` times after `--warmup` unmeasured ones:
- `/alerts/` first page, filtered (`?severity=critical&cluster=<busiest>`), and 10,000 rows deep
  (`?before=<id of the 10,000th newest>`);
- `/api/v1/events/` the same three, the deep cursor reached by following `next` 200 pages (× 50);
- `/admin/alerts/event/` (Django admin's changelist) the same three, deep = `?p=100` (× 100 rows).

The 1,000,000 events are loaded once with COPY into their own database (`bench_dms_alerts`, not
`bench_dms`: the other benchmarks delete every Cluster and Server row of `bench_dms`, which would
null the foreign keys of a million events and make their clean-up slow). A comment on the table
marks a finished load; a later run reuses it (`--reload` forces a new one).

    .venv/bin/python bench/alerts.py [--requests 50] [--explain] [--reload]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Before bench._common reads it: this benchmark's own database (see the docstring).
if "BENCH_DATABASE_URL" not in os.environ:
    os.environ["BENCH_DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/bench_dms_alerts"
warnings.filterwarnings("ignore", "No directory at", UserWarning)  # WhiteNoise: no collectstatic here

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import DATABASE_URL, load_note, percentile, prepare  # noqa: E402

EVENTS = 1_000_000
CLUSTERS = 20
DEEP_ROWS = 10_000
MARKER = f"bench-alerts v1: {EVENTS} events"
TARGETS_MS = {"page": 150.0, "api": 80.0}
NAME_PREFIX = "alerts-bench"
# Relative frequencies of event types in a year of a 20-cluster installation: flapping links,
# components and clock skew dominate; server failures and failovers are rare.
TYPE_WEIGHTS = {
    "heartbeat_link_down": 14,
    "heartbeat_link_restored": 14,
    "component_failed": 12,
    "component_recovered": 12,
    "clock_skew_detected": 8,
    "clock_skew_resolved": 8,
    "replication_failed": 7,
    "replication_recovered": 7,
    "critical_service_failed": 3,
    "critical_service_recovered": 3,
    "server_failed": 3,
    "server_recovered": 3,
    "failover_completed": 2,
    "failover_failed": 0.3,
    "failover_abandoned": 0.3,
    "switchover_completed": 1,
    "switchover_failed": 0.2,
    "initial_sync_completed": 1,
    "licenses_copied": 1,
}
CLUSTER_WIDE = {
    "replication_failed",
    "replication_recovered",
    "failover_completed",
    "failover_failed",
    "failover_abandoned",
    "switchover_completed",
    "switchover_failed",
    "initial_sync_completed",
    "licenses_copied",
}


# -- data


def marker() -> str | None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('alerts_event'::regclass, 'pg_class')")
        return cursor.fetchone()[0]


def data_intact() -> bool:
    """The marker, the row count, and every event still pointing at the bench's clusters."""
    from alerts.models import Event
    from cluster.models import Cluster

    if marker() != MARKER:
        return False
    ours = Cluster.objects.filter(name__startswith=NAME_PREFIX).count()
    return ours == CLUSTERS and Event.objects.count() == EVENTS and not Event.objects.filter(cluster=None).exists()


def load_events() -> float:
    """Empty the alerts tables and COPY a year of events in; returns the seconds it took."""
    import copy as copy_module

    from django.db import connection

    from alerts.choices import SEVERITY_OF
    from cluster.hardware import EXAMPLE
    from cluster.models import Cluster, Server

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE alerts_event, alerts_delivery, alerts_deliveryattempt RESTART IDENTITY CASCADE")
    Cluster.objects.filter(name__startswith=NAME_PREFIX).delete()
    Server.objects.filter(name__startswith=NAME_PREFIX).delete()
    servers = Server.objects.bulk_create(
        Server(
            name=f"{NAME_PREFIX}-s{i:02d}",
            application="dmm",
            part_number="DMM-FA-C210-K9" if i % 2 else "DMM-SVR-C210-K9",
            hardware=copy_module.deepcopy(EXAMPLE),
            heartbeat_url=f"http://127.0.0.1:9/s{i}",
            intranet_url=f"http://127.0.0.1:9/s{i}",
        )
        for i in range(2 * CLUSTERS)
    )
    # bulk_create: no save(), so nothing configures them; in maintenance, so nothing notifies.
    clusters = Cluster.objects.bulk_create(
        Cluster(
            name=f"{NAME_PREFIX}-c{j:02d}",
            application="dmm",
            primary=servers[2 * j],
            secondary=servers[2 * j + 1],
            maintenance=True,
        )
        for j in range(CLUSTERS)
    )
    rng = random.Random(20261125)
    types = list(TYPE_WEIGHTS)
    weights = list(TYPE_WEIGHTS.values())
    # Cluster sizes differ (Zipf-like): the busiest has ~5× the events of the quietest.
    cluster_weights = [1 / (1 + j / 5) for j in range(CLUSTERS)]
    start = datetime.now(UTC) - timedelta(days=365)
    step = 365 * 86400 / EVENTS
    ack_before = EVENTS - 2_000  # all but the newest 2,000 acknowledged
    columns = "type, severity, cluster_id, server_id, message, details, created_at, acknowledged_at"
    raw = connection.connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY alerts_event ({columns}) FROM STDIN") as copy:
            for i in range(EVENTS):
                event_type = rng.choices(types, weights)[0]
                j = rng.choices(range(CLUSTERS), cluster_weights)[0]
                cluster = clusters[j]
                server = None if event_type in CLUSTER_WIDE else servers[2 * j + rng.randrange(2)]
                created = start + timedelta(seconds=i * step + rng.random() * step)
                subject = server.name if server else cluster.name
                message = f"{subject}: {event_type.replace('_', ' ')} (bench event {i})."
                details = f'{{"bench": {i}, "misses": {rng.randrange(1, 6)}}}'
                acknowledged = created + timedelta(minutes=rng.randrange(1, 120)) if i < ack_before else None
                copy.write_row(
                    (
                        event_type,
                        SEVERITY_OF[event_type].value,
                        cluster.pk,
                        server.pk if server else None,
                        message,
                        details,
                        created,
                        acknowledged,
                    )
                )
                if i and i % 200_000 == 0:
                    print(f"  {i:,} events copied ({time.monotonic() - started:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE alerts_event")
        cursor.execute(f"COMMENT ON TABLE alerts_event IS '{MARKER}'")
    return time.monotonic() - started


# -- requests


def clients():
    from django.contrib.auth import get_user_model
    from django.test import Client

    from cluster.models import ApiToken

    user, _ = get_user_model().objects.get_or_create(
        username="alerts-bench", defaults={"is_staff": True, "is_superuser": True}
    )
    page = Client()
    page.force_login(user)
    api = Client(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user)}")
    return page, api


def relative(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path, parts.query, ""))


def api_deep_url(api, first: str, pages: int) -> tuple[str, float]:
    """The `next` link `pages` pages on from `first`, and the seconds the walk took."""
    url, started = first, time.monotonic()
    for _ in range(pages):
        response = api.get(url)
        assert response.status_code == 200, (url, response.status_code)
        url = relative(response.json()["next"])
    return url, time.monotonic() - started


def measure(client, url: str, requests: int, warmup: int, expect: int | None = None) -> dict:
    from django.db import connection

    for _ in range(warmup):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    queries: list[tuple[str, float]] = []

    def capture(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append((connection.ops.compose_sql(sql, params), time.perf_counter() - started))

    with connection.execute_wrapper(capture):
        response = client.get(url)
    rows = _rows(response)
    if expect is not None:
        assert rows == expect, (url, rows, expect)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    slowest_sql, slowest_s = max(queries, key=lambda q: q[1])
    return {
        "url": url,
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "max": max(times),
        "queries": len(queries),
        "slowest_sql": slowest_sql,
        "slowest_ms": slowest_s * 1000,
        "rows": rows,
    }


def _rows(response) -> int:
    content = response.content.decode()
    if response["Content-Type"].startswith("application/json"):
        return len(response.json()["results"])
    if "/admin/" in response.request["PATH_INFO"]:
        return content.count('class="action-select"')
    return content.count("data-event-id=")


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join("      " + row[0] for row in cursor.fetchall())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50, help="measured requests per page (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests first (default 5)")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each page's slowest query")
    parser.add_argument("--reload", action="store_true", help="load the events again even if marked loaded")
    args = parser.parse_args()
    prepare(flush_redis=False)  # nothing here uses Redis
    from alerts.models import Event
    from cluster.models import Cluster

    print(f"database {urlsplit(DATABASE_URL).path.strip('/')}; {load_note()}", flush=True)
    if args.reload or not data_intact():
        print(f"loading {EVENTS:,} events with COPY ...", flush=True)
        print(f"loaded in {load_events():.1f} s", flush=True)
    else:
        print(f"reusing the {EVENTS:,} events already loaded (marker: {MARKER!r})", flush=True)

    busiest = Cluster.objects.filter(name__startswith=NAME_PREFIX).order_by("name").first()
    critical_there = Event.objects.filter(cluster=busiest, severity="critical").count()
    deep_id = Event.objects.order_by("-id").values_list("id", flat=True)[DEEP_ROWS]
    print(
        f"filter: cluster {busiest.name} (id {busiest.pk}, {critical_there:,} critical events of "
        f"{Event.objects.filter(cluster=busiest).count():,}); deep cursor: before={deep_id}",
        flush=True,
    )
    page, api = clients()
    filtered = f"severity=critical&cluster={busiest.pk}"
    deep_api, walk_s = api_deep_url(api, "/api/v1/events/", DEEP_ROWS // 50)
    print(f"API deep cursor: followed next 200 pages in {walk_s:.1f} s", flush=True)
    runs = [
        ("page", "first page", page, "/alerts/", 50),
        ("page", "filtered", page, f"/alerts/?{filtered}", 50),
        ("page", "10,000 deep", page, f"/alerts/?before={deep_id}", 50),
        ("api", "first page", api, "/api/v1/events/", 50),
        ("api", "filtered", api, f"/api/v1/events/?{filtered}", 50),
        ("api", "10,000 deep", api, deep_api, 50),
        ("admin", "first page", page, "/admin/alerts/event/", 100),
        ("admin", "filtered", page, "/admin/alerts/event/?severity__exact=critical", 100),
        ("admin", "10,000 deep", page, "/admin/alerts/event/?p=100", 100),
    ]
    results = []
    for kind, label, client, url, expect in runs:
        result = measure(client, url, args.requests, args.warmup, expect)
        results.append((kind, label, result))
        print(
            f"  {kind:5s} {label:12s} p50 {result['p50']:7.1f} ms  p95 {result['p95']:7.1f} ms  "
            f"max {result['max']:7.1f} ms  ({result['queries']} queries, slowest {result['slowest_ms']:.1f} ms)",
            flush=True,
        )
        if args.explain:
            print(f"    {result['url']}\n    slowest query: {result['slowest_sql'][:300]}")
            print(explain(result["slowest_sql"]))

    print(f"\n{args.requests} requests each after {args.warmup} warm-up, Django test Client in-process; {load_note()}")
    print(f"| page | {' | '.join(label for _, label, *_ in runs[:3])} | target p95 |")
    print("|---|---|---|---|---|")
    for kind, name in (("page", "`/alerts/`"), ("api", "`/api/v1/events/`"), ("admin", "`/admin/alerts/event/`")):
        cells = [f"{r['p50']:.1f} / {r['p95']:.1f} ms ({r['queries']} q)" for k, _, r in results if k == kind]
        target = TARGETS_MS.get(kind)
        if target is None:
            verdict = "—"
        else:
            worst = max(r["p95"] for k, _, r in results if k == kind)
            verdict = f"< {target:g} ms: {'met' if worst < target else 'MISSED'}"
        print(f"| {name} | {' | '.join(cells)} | {verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
