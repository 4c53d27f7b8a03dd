"""The data migrations of secrets at rest: a database written before encryption has its agent tokens
and SNMP secrets encrypted by `migrate`, and decrypted again when migrated back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from alerts.models import NotificationRule
from cluster.models import Server

BEFORE = [("cluster", "0005_failover_convergence"), ("alerts", "0003_role_permissions")]
AFTER = [("cluster", "0006_secrets_at_rest"), ("alerts", "0004_secrets_at_rest")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def stored() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT agent_token FROM cluster_server WHERE name = 'old-server'")
        token = cursor.fetchone()[0]
        cursor.execute("SELECT community FROM alerts_notificationrule WHERE name = 'old-rule'")
        return token, cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_migrate_encrypts_what_was_stored_in_plain_text_and_back():
    old = migrate(BEFORE)
    try:
        old.get_model("cluster", "Server").objects.create(
            name="old-server", application="dmm", part_number="DMM-SVR-C210-K9", hardware={},
            heartbeat_url="http://127.0.0.1:1", intranet_url="http://127.0.0.1:2", agent_token="plain-agent-token",
        )  # fmt: skip
        old.get_model("alerts", "NotificationRule").objects.create(
            name="old-rule", channel="snmp", event_types=["server_failed"], host="192.0.2.1", community="plain-comm"
        )
        assert stored() == ("plain-agent-token", "plain-comm")

        migrate(AFTER)
        token, community = stored()
        assert token.startswith("gAAAAA") and community.startswith("gAAAAA")  # Fernet tokens
        assert Server.objects.get(name="old-server").agent_token == "plain-agent-token"
        assert NotificationRule.objects.get(name="old-rule").community == "plain-comm"

        migrate(BEFORE)
        assert stored() == ("plain-agent-token", "plain-comm")
    finally:
        migrate(AFTER)
