"""Secrets encrypted at rest (dms_admin/encryption.py) and API tokens stored hashed: a dump of the
database, PostgreSQL's or the SQLite file, holds none of the secrets an administrator entered, and
the product still reads them; the encryption key rotates without losing one."""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from alerts.models import NotificationRule
from cluster.models import Server
from dms_admin.encryption import SecretUnreadable
from tests.factories import ServerFactory
from tests.security.secret_entry import AGENT_TOKEN, AUTH_KEY, COMMUNITY, PRIV_KEY, enter_secrets

REPO_ROOT = Path(__file__).resolve().parents[2]


def pg_dump() -> str:
    db = connection.settings_dict
    command = ["pg_dump", "--data-only", "-h", db["HOST"] or "127.0.0.1", "-U", db["USER"] or "postgres"]
    command += ["-p", str(db["PORT"] or 5432), db["NAME"]]
    environment = {**os.environ, "PGPASSWORD": db["PASSWORD"] or ""}
    return subprocess.run(command, capture_output=True, text=True, check=True, env=environment, timeout=60).stdout


def raw(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {column} <> '' ORDER BY id")
        return [value for (value,) in cursor.fetchall()]


def test_a_postgresql_dump_holds_no_secret_and_the_product_still_reads_them(transactional_db):
    entered = enter_secrets()

    dump = pg_dump()

    assert "at-rest-admin" in dump and "192.0.2.162" in dump  # the dump holds the rows
    assert [secret for secret in entered if secret in dump] == []
    assert Server.objects.get().agent_token == AGENT_TOKEN
    rules = {rule.snmp_version: rule for rule in NotificationRule.objects.all()}
    assert (rules["v2c"].community, rules["v3"].auth_key, rules["v3"].priv_key) == (COMMUNITY, AUTH_KEY, PRIV_KEY)
    api = APIClient(HTTP_AUTHORIZATION=f"Token {entered[-1]}")
    assert api.get("/api/v1/clusters/").status_code == 200


def test_the_sqlite_file_holds_no_secret(tmp_path):
    database = tmp_path / "dms.sqlite3"
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DMS_RUN_DIR": str(tmp_path)}

    def manage(*args: str) -> str:
        run = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=environment, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    manage("migrate", "-v0")
    code = "import json; from tests.security.secret_entry import enter_secrets; print(json.dumps(enter_secrets()))"
    entered = json.loads(manage("shell", "--no-imports", "-c", code).strip().splitlines()[-1])
    files = b"".join(path.read_bytes() for path in tmp_path.glob("dms.sqlite3*"))

    assert b"at-rest-admin" in files and len(entered) == 5
    assert [secret for secret in entered if secret.encode() in files] == []


def test_a_new_key_takes_over_and_the_old_one_can_then_go(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    server = ServerFactory(agent_token=AGENT_TOKEN)
    before = raw("cluster_server", "agent_token")

    settings.FIELD_ENCRYPTION_KEYS = [new, old]  # the new key first; the old one still decrypts
    assert Server.objects.get(pk=server.pk).agent_token == AGENT_TOKEN
    call_command("rotate_encryption_key", stdout=StringIO())
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key dropped

    assert raw("cluster_server", "agent_token") != before
    assert Server.objects.get(pk=server.pk).agent_token == AGENT_TOKEN


def test_without_the_key_a_secret_is_refused_with_a_clear_message(db, settings):
    ServerFactory(name="lost", agent_token=AGENT_TOKEN)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(SecretUnreadable, match="FIELD_ENCRYPTION_KEYS"):
        Server.objects.get(name="lost")
