"""Shared personas (STYLE.md): admin, operator, viewer and an outsider with no role, each with an
API client, so every endpoint is tested for refusal as well as for success."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import UserFactory

# The real control plane (Celery workers and beat) and clusters of real agents, for the failover,
# replication and fault tests: one control plane per session, whichever folders run.
from tests.support.controlplane import (  # noqa: F401
    agents,
    control_plane,
    control_plane_default_stopped,
    control_plane_paused,
    make_cluster,
)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="alice-admin", role="admin", is_staff=True)


@pytest.fixture
def operator_user(db):
    return UserFactory(username="oscar-operator", role="operator")


@pytest.fixture
def viewer_user(db):
    return UserFactory(username="victor-viewer", role="viewer")


@pytest.fixture
def outsider_user(db):
    return UserFactory(username="olga-outsider")


def _client_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def anonymous_api(db):
    return APIClient()


@pytest.fixture
def admin_api(admin_user):
    return _client_for(admin_user)


@pytest.fixture
def operator_api(operator_user):
    return _client_for(operator_user)


@pytest.fixture
def viewer_api(viewer_user):
    return _client_for(viewer_user)


@pytest.fixture
def outsider_api(outsider_user):
    return _client_for(outsider_user)


@pytest.fixture(scope="session", autouse=True)
def flush_retried_on_deadlock():
    """The table flush after each transactional test runs while the session's Celery workers keep
    querying: its TRUNCATE can deadlock with a worker's transaction, and PostgreSQL may pick the
    flush as the victim. The worker's transaction then finishes, so the flush is tried again.
    django-celery-beat's tables are left out of it (`keep_beat_schedule`); after it, what the
    migrations seeded is put back (`restore_seeded_data`)."""
    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    flush = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list, attempts=5):
        sql_list = [kept for kept in map(keep_beat_schedule, sql_list) if kept]
        for attempt in range(attempts):
            try:
                flush(self, sql_list)
                break
            except OperationalError as error:
                if "deadlock detected" not in str(error) or attempt == attempts - 1:
                    raise
        restore_seeded_data()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseDatabaseOperations, "execute_sql_flush", execute_sql_flush)
        yield


def keep_beat_schedule(sql: str) -> str:
    """The flush's `TRUNCATE "t1", "t2", … [RESTART IDENTITY] [CASCADE];` without django-celery-beat's
    tables. The session's beat re-reads them in full every 5 minutes: a read between a TRUNCATE and
    a restore found no schedule (beat failed with "'NoneType' object has no attribute 'schedule'"
    and dispatched no heartbeat for the rest of the run). Nothing else references those tables."""
    if not sql.startswith("TRUNCATE "):
        return sql
    names = re.findall(r'"[^"]+"', sql)
    suffix = sql[sql.rindex(names[-1]) + len(names[-1]) :] if names else ""
    kept = [name for name in names if not name.startswith('"django_celery_beat_')]
    return f"TRUNCATE {', '.join(kept)}{suffix}" if kept else ""


# What the data migrations seed (roles with their permissions, the part catalog), as it stood once the
# test database was made: a transactional test's table flush empties it, and with several test
# workers any file may run after such a test.
SEED_MODELS = ["contenttypes.ContentType", "auth.Permission", "auth.Group", "licensing.PartNumber"]
SEEDED: str | None = None


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    global SEEDED
    from django.apps import apps
    from django.core import serializers

    with django_db_blocker.unblock():
        rows = [row for name in SEED_MODELS for row in apps.get_model(name).objects.order_by("pk")]
        SEEDED = serializers.serialize("json", rows)


def restore_seeded_data() -> None:
    """Put back SEEDED, before the flush's post_migrate handlers would make content types and
    permissions anew under other ids."""
    from django.contrib.auth.models import Group
    from django.core import serializers
    from django.db import transaction

    if SEEDED is None:
        return
    rows = list(serializers.deserialize("json", SEEDED))
    models = {}  # in SEED_MODELS order: what a row refers to comes first
    for row in rows:
        models.setdefault(type(row.object), []).append(row.object)
    through = Group.permissions.through
    granted = [
        through(group_id=row.object.pk, permission_id=pk) for row in rows for pk in row.m2m_data.get("permissions", [])
    ]
    with transaction.atomic():  # a few statements, not one per row: this runs after every flush
        for model, objects in models.items():
            model.objects.bulk_create(objects, ignore_conflicts=True)
        through.objects.bulk_create(granted, ignore_conflicts=True)


PRIVATE_REDIS = None


def pytest_sessionstart(session):
    """`make test` points REDIS_URL at a port of the suite's own; start that redis-server if it is
    not running (restart-fault tests restart it; the machine's Redis on 6379 is left alone)."""
    global PRIVATE_REDIS
    from tests.support.redis_server import PrivateRedis

    if session.config.getoption("numprocesses", None) and not hasattr(session.config, "workerinput"):
        return  # pytest-xdist's controller runs no test; each worker starts its own (tests/xdist_env.py)

    candidate = PrivateRedis(settings.REDIS_URL, Path(__file__).resolve().parents[1] / "test-artifacts" / "redis")
    if candidate.port != 6379 and not candidate.answers():
        candidate.start()
        PRIVATE_REDIS = candidate


def pytest_sessionfinish(session, exitstatus):
    if PRIVATE_REDIS is not None:
        PRIVATE_REDIS.stop()


# The longest files, started first: with pytest-xdist's `--dist loadfile` a file runs whole on one
# worker, and one of these collected last (the schema fuzz takes ~160 s) left the other worker idle
# at the end. Measured with `--durations` (docs/benchmarks.md, "The suite's time").
RUN_FIRST = ("tests/test_api_schema_fuzz.py", "tests/model/test_model.py", "tests/test_demo.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return RUN_FIRST.index(path) if path in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=rank)  # stable: every other file keeps its place
