"""The baseline of bench/heartbeat.py: ONE Celery task per probe. Loaded with
`celery -A dms_admin worker -Q bench_probe -I bench.probe_per_task`.

Each task sends one `POST /v1/heartbeat` (lease 0: a probe) with urllib and counts it in Redis.
"""

from __future__ import annotations

import json
import time
import urllib.request

from dms_admin.celery import app
from dms_admin.redis import redis_client

QUEUE = "bench_probe"
COUNT = "bench:ppt:count"
LATENCIES = "bench:ppt:lat"


@app.task(name="bench.probe_one", ignore_result=True, acks_late=False)
def probe_one(base_url: str, token: str) -> int:
    sent = time.time()
    body = json.dumps({"epoch": 1, "lease_s": 0, "sent_at": sent}).encode()
    request = urllib.request.Request(
        base_url + "/v1/heartbeat",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1.0) as response:
            json.loads(response.read())
            status = response.status
    except OSError:
        status = 0
    pipe = redis_client().pipeline(transaction=False)
    pipe.incr(COUNT)
    pipe.rpush(LATENCIES, f"{time.time() - sent:.6f}")
    pipe.execute()
    return status
