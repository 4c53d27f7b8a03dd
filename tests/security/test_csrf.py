"""Every form of the pages is CSRF-protected: a POST without the token is refused (403) even from a
signed-in administrator, and the same POST with the token is not — so the 403 is the CSRF check's."""

import pytest
from django.test import Client

from alerts.models import NotificationRule
from tests.alerts.factories import SnmpRuleFactory
from tests.factories import ClusterFactory, EventFactory
from tests.support.snmptrapd import free_udp_port


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr("cluster.actions.replicate.delay", lambda *a: None)
    monkeypatch.setattr("cluster.actions.run_failover.apply_async", lambda *a, **kw: None)
    cluster = ClusterFactory()
    return {"cluster": cluster, "event": EventFactory(cluster=cluster), "rule": SnmpRuleFactory(port=free_udp_port())}


def rule_form(name: str) -> dict:
    return {
        "name": name,
        "enabled": "on",
        "event_types": ["server_failed"],
        "min_severity": "info",
        "host": "127.0.0.1",
        "port": free_udp_port(),
        "snmp_version": "v2c",
        "snmp_mode": "trap",
        "community": "public",
        "auth_protocol": "sha",
        "priv_protocol": "aes128",
    }


def forms(world) -> list[tuple[str, dict]]:
    """Every POST endpoint of the pages (logout last but one, delete last: they end things)."""
    cluster, event, rule = world["cluster"], world["event"], world["rule"]
    return [
        ("/alerts/acknowledge/", {"event": [event.pk]}),
        ("/alerts/rules/new/snmp/", rule_form("csrf-new")),
        (f"/alerts/rules/{rule.pk}/edit/", rule_form("csrf-edited")),
        (f"/alerts/rules/{rule.pk}/test/", {}),
        (f"/clusters/{cluster.pk}/replicate/", {}),
        (f"/clusters/{cluster.pk}/switchover/", {}),
        (f"/clusters/{cluster.pk}/confirm-deletions/", {}),
        (f"/alerts/rules/{rule.pk}/delete/", {}),
        ("/logout/", {}),
    ]


def signed_in(admin_user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    client.get("/")  # sets the CSRF cookie, as a browser would have it
    return client


def test_every_form_refuses_a_post_without_the_token(world, admin_user):
    client = signed_in(admin_user)

    for path, data in forms(world):
        response = client.post(path, data)
        assert response.status_code == 403, path
        assert b"CSRF" in response.content, path

    assert NotificationRule.objects.filter(name="csrf-new").count() == 0
    assert NotificationRule.objects.filter(pk=world["rule"].pk).exists()


def test_every_form_takes_a_post_with_the_token(world, admin_user):
    client = signed_in(admin_user)
    token = client.cookies["csrftoken"].value

    for path, data in forms(world):
        response = client.post(path, data, HTTP_X_CSRFTOKEN=token)
        assert response.status_code != 403, path

    assert NotificationRule.objects.filter(name="csrf-new").exists()
    assert not NotificationRule.objects.filter(pk=world["rule"].pk).exists()


def test_the_login_form_refuses_a_post_without_the_token(admin_user):
    client = Client(enforce_csrf_checks=True)

    refused = client.post("/login/", {"username": admin_user.username, "password": "correct-horse-battery"})

    assert refused.status_code == 403
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        "/login/", {"username": admin_user.username, "password": "correct-horse-battery", "csrfmiddlewaretoken": token}
    )
    assert accepted.status_code == 302
