"""Secrets entered the way an administrator enters them, through the API: shared by the tests of
secrets at rest, in the test process (PostgreSQL) and in a `manage.py shell` (SQLite)."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import ServerFactory

AGENT_TOKEN = "agent-tok-ATREST-4f5e6d"
COMMUNITY = "comm-ATREST-7c8b9a"
AUTH_KEY = "auth-ATREST-1a2b3c"
PRIV_KEY = "priv-ATREST-4d5e6f"
SECRETS = [AGENT_TOKEN, COMMUNITY, AUTH_KEY, PRIV_KEY]


def enter_secrets() -> list[str]:
    """An agent token, a v2c community and v3 keys through the API, and an API token from the
    command; returns every secret entered (the API token last), each asserted to have been taken."""
    admin = get_user_model().objects.create_superuser("at-rest-admin", password="correct-horse-battery")
    api = APIClient()
    api.force_authenticate(admin)
    server = ServerFactory(agent_token="")
    answers = [
        api.patch(f"/api/v1/servers/{server.pk}/", {"agent_token": AGENT_TOKEN}, format="json"),
        api.post("/api/v1/notification-rules/", rule("v2c", community=COMMUNITY), format="json"),
        api.post("/api/v1/notification-rules/", rule("v3", auth_key=AUTH_KEY, priv_key=PRIV_KEY), format="json"),
    ]
    assert [a.status_code for a in answers] == [200, 201, 201], [a.content for a in answers]
    out = StringIO()
    call_command("create_api_token", admin.username, stdout=out)
    return [*SECRETS, out.getvalue().strip()]


def rule(version: str, **secrets: str) -> dict:
    return {
        "name": f"at-rest {version}",
        "channel": "snmp",
        "host": "192.0.2.162",
        "snmp_version": version,
        "snmp_user": "dms" if version == "v3" else "",
        **secrets,
    }
