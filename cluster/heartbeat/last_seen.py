"""Last-seen times from Redis into the database (DESIGN §4.6): the heartbeat writes the database
on transitions only, so the servers' `last_heartbeat_at` columns are brought up to date
periodically, off the heartbeat queue."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection

from ..models import Server
from .state import HeartbeatState


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def flush_last_seen() -> int:
    """One UPDATE statement per thousand servers heard since the last flush. The values are named
    by a common table expression, which PostgreSQL and SQLite (the demo's database) both accept; a
    column list on a VALUES alias (`AS v(id, at)`) is PostgreSQL's only."""
    state = HeartbeatState()
    servers = list(Server.objects.values_list("id", "last_heartbeat_at"))
    seen = state.last_answers([sid for sid, _ in servers])
    changed = [
        (server_id, _at(seen[server_id]))
        for server_id, stored in servers
        if server_id in seen and (stored is None or _at(seen[server_id]) > stored)
    ]
    table = Server._meta.db_table
    row = "(%s::bigint, %s::timestamptz)" if connection.vendor == "postgresql" else "(%s, %s)"
    with connection.cursor() as cursor:
        for start in range(0, len(changed), 1000):
            chunk = changed[start : start + 1000]
            values = ", ".join([row] * len(chunk))
            sql = f"WITH v(id, at) AS (VALUES {values}) UPDATE {table} SET last_heartbeat_at = v.at FROM v"
            params = [p for server_id, at in chunk for p in (server_id, connection.ops.adapt_datetimefield_value(at))]
            cursor.execute(f"{sql} WHERE {table}.id = v.id", params)
    return len(changed)
