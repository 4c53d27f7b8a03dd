"""The flush of last-seen times on both databases the product runs on: PostgreSQL (the database of
record) and SQLite, the default of `make run`, where the dashboard's "Last heartbeat" froze because
the flush's SQL was PostgreSQL's only (issue 12)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cluster.models import Server
from cluster.tasks import flush_last_seen
from dms_admin.redis import redis_client
from tests.factories import ServerFactory

ROOT = Path(__file__).resolve().parents[2]
SQLITE_REDIS_DB = 8  # apart from the session's database 0 and the demo test's 7

# Run by `manage.py shell` on a fresh SQLite database: two servers, one heard, two flushes.
SQLITE_SCRIPT = """
import json
from cluster.models import Server
from cluster.tasks import flush_last_seen
from dms_admin.redis import redis_client
from dms_admin.redis import redis_client
from tests.factories import ServerFactory

heard, silent = ServerFactory(), ServerFactory()
redis_client().hset(f"dms:srv:{heard.pk}", "last_answer_at", "1764100000.5")
first, second = flush_last_seen(), flush_last_seen()
at = {s.pk: s.last_heartbeat_at and s.last_heartbeat_at.timestamp() for s in Server.objects.all()}
print(json.dumps({"first": first, "second": second, "heard": at[heard.pk], "silent": at[silent.pk]}))
"""


def test_the_flush_writes_last_seen_times_on_sqlite(tmp_path):
    url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{SQLITE_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'dms.sqlite3'}", "REDIS_URL": url}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, cwd=ROOT, check=True, timeout=120)

    done = subprocess.run(
        [*manage, "shell", "-c", SQLITE_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"first": 1, "second": 0, "heard": 1764100000.5, "silent": None}


def test_the_flush_is_one_statement_per_thousand_servers_on_postgresql(db):
    servers = Server.objects.bulk_create(ServerFactory.build(name=f"flush-{n:04d}") for n in range(2500))
    client = redis_client()
    keys = [f"dms:srv:{server.pk}" for server in servers]  # new ids: no other test's keys
    with client.pipeline(transaction=False) as writes:
        writes.hset(keys[0], "last_answer_at", "1764100000.5")
        for key in keys[1:]:
            writes.hset(key, "last_answer_at", "1764100001.25")
        writes.execute()

    try:
        with CaptureQueriesContext(connection) as queries:
            assert flush_last_seen() == 2500
    finally:
        client.delete(*keys)

    updates = [q for q in queries.captured_queries if "UPDATE" in q["sql"]]
    assert connection.vendor == "postgresql" and len(updates) == 3
    stamps = dict(Server.objects.filter(name__startswith="flush-").values_list("name", "last_heartbeat_at"))
    assert stamps["flush-0000"].timestamp() == 1764100000.5
    assert {at.timestamp() for name, at in stamps.items() if name != "flush-0000"} == {1764100001.25}
