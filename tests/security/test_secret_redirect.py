"""A stored secret is never sent to a new address chosen by someone who did not give it: changing
a server's agent URLs, or an SNMP rule's host or port, with the secret left blank is refused —
through the API, the rule page and the admin — and accepted with the secret entered again."""

import pytest
from django.test import Client

from alerts.models import NotificationRule
from cluster.models import Server
from tests.alerts.factories import SnmpRuleFactory, V3RuleFactory
from tests.cluster.test_cluster_rules_admin import _server_form
from tests.factories import ServerFactory

ATTACKER = "http://203.0.113.66:8443"


@pytest.fixture
def admin_web(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("field", ["heartbeat_url", "intranet_url"])
def test_the_api_refuses_a_new_agent_address_without_the_token(admin_api, field):
    server = ServerFactory(agent_token="stored-token")

    refused = admin_api.patch(f"/api/v1/servers/{server.pk}/", {field: ATTACKER}, format="json")
    blank = admin_api.patch(f"/api/v1/servers/{server.pk}/", {field: ATTACKER, "agent_token": ""}, format="json")
    accepted = admin_api.patch(
        f"/api/v1/servers/{server.pk}/", {field: ATTACKER, "agent_token": "new-token"}, format="json"
    )

    assert refused.status_code == 400 and blank.status_code == 400
    assert "enter the agent token again" in refused.json()["agent_token"][0]
    assert accepted.status_code == 200
    server.refresh_from_db()
    assert (getattr(server, field), server.agent_token) == (ATTACKER, "new-token")


def test_the_api_keeps_the_token_for_changes_elsewhere(admin_api):
    server = ServerFactory(agent_token="stored-token")

    answer = admin_api.patch(f"/api/v1/servers/{server.pk}/", {"web_url": "https://dmm.example.com/"}, format="json")

    assert answer.status_code == 200
    assert Server.objects.get(pk=server.pk).agent_token == "stored-token"


def test_the_api_refuses_a_new_trap_host_without_the_community(admin_api):
    rule = SnmpRuleFactory(community="stored-community")

    refused = admin_api.patch(f"/api/v1/notification-rules/{rule.pk}/", {"host": "203.0.113.66"}, format="json")
    renamed = admin_api.patch(f"/api/v1/notification-rules/{rule.pk}/", {"name": "renamed"}, format="json")
    accepted = admin_api.patch(
        f"/api/v1/notification-rules/{rule.pk}/", {"host": "192.0.2.7", "community": "new-community"}, format="json"
    )

    assert refused.status_code == 400
    assert "enter this secret again" in refused.json()["community"][0]
    assert renamed.status_code == 200 and accepted.status_code == 200
    rule.refresh_from_db()
    assert (rule.name, rule.host, rule.community) == ("renamed", "192.0.2.7", "new-community")


def test_the_api_asks_for_both_v3_keys_on_a_new_port(admin_api):
    rule = V3RuleFactory()

    refused = admin_api.patch(f"/api/v1/notification-rules/{rule.pk}/", {"port": 1162}, format="json")
    half = admin_api.patch(
        f"/api/v1/notification-rules/{rule.pk}/", {"port": 1162, "auth_key": "new-auth-key"}, format="json"
    )

    assert refused.status_code == 400 and set(refused.json()) == {"auth_key", "priv_key"}
    assert half.status_code == 400 and set(half.json()) == {"priv_key"}
    assert NotificationRule.objects.get(pk=rule.pk).port == 16200


def rule_page_data(rule, **changes) -> dict:
    data = {
        "name": rule.name, "event_types": ["server_failed"], "min_severity": "info", "host": rule.host,
        "port": str(rule.port), "snmp_version": rule.snmp_version, "snmp_mode": "trap", "community": "",
        "snmp_user": rule.snmp_user, "auth_protocol": rule.auth_protocol, "auth_key": "",
        "priv_protocol": rule.priv_protocol, "priv_key": "",
    }  # fmt: skip
    return {**data, **changes}


def test_the_rule_page_refuses_a_new_host_without_the_community(admin_web):
    rule = SnmpRuleFactory(community="stored-community")
    url = f"/alerts/rules/{rule.pk}/edit/"

    refused = admin_web.post(url, rule_page_data(rule, host="203.0.113.66"))
    accepted = admin_web.post(url, rule_page_data(rule, host="203.0.113.66", community="new-community"))

    assert refused.status_code == 400  # the form comes back with its errors
    assert "enter this secret again" in refused.context["form"].errors["community"][0]
    assert accepted.status_code == 302
    assert NotificationRule.objects.get(pk=rule.pk).community == "new-community"


def test_the_admin_refuses_a_new_port_without_the_v3_keys(admin_web):
    rule = V3RuleFactory()
    url = f"/admin/alerts/notificationrule/{rule.pk}/change/"
    data = {**rule_page_data(rule, port="1162"), "channel": "snmp", "enabled": "on"}
    data.update(event_types='["server_failed"]', recipients="[]")

    refused = admin_web.post(url, data)

    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "enter this secret again" in errors["auth_key"][0] and "enter this secret again" in errors["priv_key"][0]
    assert NotificationRule.objects.get(pk=rule.pk).port == 16200


def test_the_admin_refuses_a_new_heartbeat_url_without_the_token(admin_web):
    server = ServerFactory(agent_token="stored-token")
    url = f"/admin/cluster/server/{server.pk}/change/"

    refused = admin_web.post(url, _server_form(server, heartbeat_url=ATTACKER))
    accepted = admin_web.post(url, _server_form(server, heartbeat_url=ATTACKER, agent_token="new-token"))

    assert refused.status_code == 200
    assert "enter the agent token again" in refused.context["adminform"].form.errors["agent_token"][0]
    assert accepted.status_code == 302
    server.refresh_from_db()
    assert (server.heartbeat_url, server.agent_token) == (ATTACKER, "new-token")
