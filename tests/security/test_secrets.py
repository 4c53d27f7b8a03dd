"""Secrets are write-only (DESIGN §4.7): agent tokens, SNMP communities and v3 keys, the SMTP password
and the metrics token never appear in an API answer, a page, the OpenAPI schema or a log line —
not even when a test notification fails and its error is shown and logged.

Agents refusing path traversal, symlink escapes and oversized bodies are tested where the agent is:
tests/agent/test_agent_data.py.
"""

import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from alerts.models import Delivery
from cluster.models import ReplicationJob
from dms_admin.urls import router
from licensing.models import License
from tests.alerts.factories import DeliveryFactory, EmailRuleFactory, SnmpRuleFactory, V3RuleFactory
from tests.factories import ClusterFactory, EventFactory, ServerFactory
from tests.support.agents import free_port
from tests.support.snmptrapd import free_udp_port

AGENT_TOKEN = "agent-tok-SECRET-1a2b3c"
COMMUNITY = "comm-SECRET-3c4d5e"
AUTH_KEY = "auth-SECRET-5e6f7a"
PRIV_KEY = "priv-SECRET-7a8b9c"
SMTP_PASSWORD = "smtp-SECRET-9c0d1e"
METRICS_TOKEN = "metrics-SECRET-1e2f3a"
SECRETS = [AGENT_TOKEN, COMMUNITY, AUTH_KEY, PRIV_KEY, SMTP_PASSWORD, METRICS_TOKEN]


@pytest.fixture
def world(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens: sends fail
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "dms", SMTP_PASSWORD
    settings.METRICS_TOKEN = METRICS_TOKEN
    primary = ServerFactory(agent_token=AGENT_TOKEN)
    cluster = ClusterFactory(primary=primary, secondary__agent_token=AGENT_TOKEN)
    event = EventFactory(cluster=cluster, server=primary)
    rules = [
        SnmpRuleFactory(community=COMMUNITY, port=free_udp_port()),
        V3RuleFactory(auth_key=AUTH_KEY, priv_key=PRIV_KEY, snmp_mode="inform", port=free_udp_port()),
        EmailRuleFactory(),
    ]
    for rule in rules:
        DeliveryFactory(event=event, rule=rule, status="failed", last_error="receiver down")
    ReplicationJob.objects.create(cluster=cluster, kind="initial", source=primary, target=cluster.secondary, epoch=1)
    License.objects.create(server=primary, name="signage", key="LIC-1", source="installed")
    return {"cluster": cluster, "event": event, "rules": rules, "servers": [primary, cluster.secondary]}


def assert_no_secret(where: str, text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{where} shows {leaked}"


@pytest.fixture
def admin_web(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


def api_paths(admin_api) -> list[str]:
    """Every list endpoint of the router, and the detail of each listed row."""
    paths = []
    for prefix, _, _ in router.registry:
        paths.append(f"/api/v1/{prefix}/")
        body = admin_api.get(f"/api/v1/{prefix}/").json()
        rows = body["results"] if isinstance(body, dict) and "results" in body else body
        paths += [f"/api/v1/{prefix}/{row['id']}/" for row in rows if isinstance(row, dict) and "id" in row]
    return paths


def page_paths(world) -> list[str]:
    cluster, event, rules = world["cluster"], world["event"], world["rules"]
    paths = ["/", f"/clusters/{cluster.pk}/", f"/clusters/{cluster.pk}/replication/"]
    paths += ["/alerts/", f"/alerts/{event.pk}/", "/alerts/rules/", "/alerts/export.csv"]
    paths += [f"/alerts/rules/{rule.pk}/edit/" for rule in rules]
    paths += ["/admin/cluster/server/", "/admin/alerts/notificationrule/", "/admin/alerts/delivery/"]
    paths += [f"/admin/cluster/server/{server.pk}/change/" for server in world["servers"]]
    paths += [f"/admin/alerts/notificationrule/{rule.pk}/change/" for rule in rules]
    paths += [f"/admin/alerts/delivery/{pk}/change/" for pk in Delivery.objects.values_list("pk", flat=True)]
    paths += ["/api/schema/", "/api/schema/?format=json", "/api/docs/"]
    return paths


def body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_no_api_answer_page_or_log_line_shows_a_secret(world, admin_api, admin_web, caplog):
    with caplog.at_level(logging.DEBUG):
        fetched = 0
        for path in api_paths(admin_api):
            response = admin_api.get(path)
            assert response.status_code == 200, path
            assert_no_secret(path, body(response))
            fetched += 1
        for path in page_paths(world):
            response = admin_web.get(path)
            assert response.status_code == 200, path
            assert_no_secret(path, body(response))
            fetched += 1
        metrics = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
        assert metrics.status_code == 200
        assert_no_secret("/metrics", body(metrics))

    assert fetched > 30
    assert_no_secret("the logs", caplog.text)
    assert_no_secret("the log records' arguments", repr([record.args for record in caplog.records]))


def test_a_failing_test_notification_shows_and_logs_no_secret(world, admin_api, admin_web, settings, caplog):
    settings.SNMP_INFORM_TIMEOUT_S = 0.3
    with caplog.at_level(logging.DEBUG):
        for rule in world["rules"]:
            api = admin_api.post(f"/api/v1/notification-rules/{rule.pk}/test/")
            page = admin_web.post(f"/alerts/rules/{rule.pk}/test/", follow=True)

            if rule.channel == "email" or rule.snmp_mode == "inform":  # a trap to nobody "succeeds"
                assert api.status_code == 502, (rule.channel, api.content)
                assert "failed" in body(page)
            assert_no_secret(f"the test of {rule.channel} rule (API)", body(api))
            assert_no_secret(f"the test of {rule.channel} rule (page)", body(page))

    assert_no_secret("the logs", caplog.text)
    assert_no_secret("the log records' arguments", repr([record.args for record in caplog.records]))


def test_writes_take_secrets_but_answers_omit_them(world, admin_api):
    server = world["servers"][0]
    rule = world["rules"][0]

    server_answer = admin_api.patch(f"/api/v1/servers/{server.pk}/", {"agent_token": AGENT_TOKEN + "-new"})
    rule_answer = admin_api.patch(f"/api/v1/notification-rules/{rule.pk}/", {"community": COMMUNITY + "-new"})

    assert server_answer.status_code == 200 and rule_answer.status_code == 200
    assert_no_secret("PATCH server", body(server_answer))
    assert_no_secret("PATCH rule", body(rule_answer))
    server.refresh_from_db()
    assert server.agent_token == AGENT_TOKEN + "-new"
