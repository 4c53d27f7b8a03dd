"""/api/v1/notification-rules/: CRUD for admins, reads for viewers, tests for operators; secrets
are write-only; the model's validation answers with clear messages."""

import pytest

from alerts.models import NotificationRule
from tests.alerts.factories import SAFE_DEFAULTS, EmailRuleFactory, SnmpRuleFactory, V3RuleFactory
from tests.factories import ClusterFactory

URL = "/api/v1/notification-rules/"
SECRETS = ["s3cret-community", "dms-auth-key-1", "dms-priv-key-1"]

V2C = {"name": "nms", "channel": "snmp", "host": "nms.example.com", "community": "s3cret-community"}
V3 = {
    "name": "nms-v3",
    "channel": "snmp",
    "host": "10.0.0.5",
    "snmp_version": "v3",
    "snmp_mode": "inform",
    "snmp_user": "dmsuser",
    "auth_protocol": "sha256",
    "auth_key": "dms-auth-key-1",
    "priv_protocol": "aes128",
    "priv_key": "dms-priv-key-1",
}
EMAIL = {"name": "noc", "channel": "email", "recipients": ["noc@example.com", "oncall@example.com"]}


def test_it_creates_an_snmp_rule_with_the_default_events(admin_api):
    response = admin_api.post(URL, V2C, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["event_types"] == SAFE_DEFAULTS
    assert body["port"] == 162 and body["snmp_mode"] == "trap" and body["community_set"] is True
    assert "community" not in body
    assert NotificationRule.objects.get(name="nms").community == "s3cret-community"


def test_it_creates_a_v3_authpriv_rule_and_an_email_rule(admin_api):
    v3 = admin_api.post(URL, V3, format="json")
    email = admin_api.post(URL, EMAIL, format="json")

    assert v3.status_code == 201, v3.json()
    assert v3.json()["auth_key_set"] and v3.json()["priv_key_set"]
    assert email.status_code == 201, email.json()
    assert email.json()["recipients"] == ["noc@example.com", "oncall@example.com"]


def test_it_limits_a_rule_to_clusters(admin_api):
    cluster = ClusterFactory()

    response = admin_api.post(URL, {**EMAIL, "clusters": [cluster.pk], "min_severity": "warning"}, format="json")

    assert response.status_code == 201
    assert response.json()["clusters"] == [cluster.pk]


def test_it_never_answers_secrets(admin_api, viewer_api):
    rule = V3RuleFactory()
    SnmpRuleFactory()

    for client in (admin_api, viewer_api):
        for url in (URL, f"{URL}{rule.pk}/"):
            text = client.get(url).content.decode()
            assert not any(secret in text for secret in SECRETS), url
    schema = admin_api.get("/api/schema/").content.decode()
    assert "community_set" in schema


def test_a_blank_or_missing_secret_keeps_the_stored_one(admin_api):
    rule = V3RuleFactory()

    blank = admin_api.patch(f"{URL}{rule.pk}/", {"auth_key": "", "snmp_mode": "inform"}, format="json")
    missing = admin_api.put(f"{URL}{rule.pk}/", {**V3, "auth_key": None, "priv_key": ""}, format="json")

    assert blank.status_code == 200, blank.json()
    assert missing.status_code in (200, 400)
    rule.refresh_from_db()
    assert rule.auth_key == "dms-auth-key-1" and rule.priv_key == "dms-priv-key-1"


def test_a_new_secret_replaces_the_stored_one(admin_api):
    rule = SnmpRuleFactory()

    response = admin_api.patch(f"{URL}{rule.pk}/", {"community": "new-community"}, format="json")

    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.community == "new-community"


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"host": "not a host!"}, "host", "is not a hostname or an IP address"),
        ({"host": ""}, "host", "hostname or IP address"),
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"port": 70000}, "port", "less than or equal to 65535"),
        ({"community": ""}, "community", "SNMPv2c needs a community"),
        ({"event_types": []}, "event_types", "at least one event type"),
        ({"event_types": ["server_exploded"]}, "event_types", "not a valid choice"),
        ({"snmp_version": "v3", "snmp_user": ""}, "snmp_user", "SNMPv3 needs a user name"),
        ({"snmp_version": "v3", "snmp_user": "u", "auth_key": "short"}, "auth_key", "at least 8 characters"),
        (
            {"snmp_version": "v3", "snmp_user": "u", "auth_key": "long-enough", "priv_key": "short"},
            "priv_key",
            "at least 8 characters",
        ),
        (
            {"snmp_version": "v3", "snmp_user": "u", "auth_protocol": "none", "priv_key": "long-enough"},
            "priv_protocol",
            "needs an authentication protocol",
        ),
    ],
)
def test_it_refuses_bad_snmp_settings_with_a_clear_message(admin_api, changes, field, message):
    response = admin_api.post(URL, {**V2C, **changes}, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert message in " ".join(response.json()[field]), response.json()


@pytest.mark.parametrize(
    "recipients, message",
    [([], "at least one email address"), (["noc@example.com", "not-an-address"], "“not-an-address” is not a valid")],
)
def test_it_refuses_bad_email_recipients(admin_api, recipients, message):
    response = admin_api.post(URL, {**EMAIL, "recipients": recipients}, format="json")

    assert response.status_code == 400
    assert message in " ".join(response.json()["recipients"])


def test_it_refuses_anonymous_and_outsiders(anonymous_api, outsider_api):
    rule = EmailRuleFactory()

    for client, code in ((anonymous_api, (401, 403)), (outsider_api, (403,))):
        assert client.get(URL).status_code in code
        assert client.get(f"{URL}{rule.pk}/").status_code in code
        assert client.post(URL, EMAIL, format="json").status_code in code
        assert client.post(f"{URL}{rule.pk}/test/").status_code in code


def test_a_viewer_reads_but_neither_writes_nor_tests(viewer_api):
    rule = EmailRuleFactory()

    assert viewer_api.get(URL).status_code == 200
    assert viewer_api.post(URL, EMAIL, format="json").status_code == 403
    assert viewer_api.patch(f"{URL}{rule.pk}/", {"enabled": False}, format="json").status_code == 403
    assert viewer_api.delete(f"{URL}{rule.pk}/").status_code == 403
    assert viewer_api.post(f"{URL}{rule.pk}/test/").status_code == 403


def test_an_operator_tests_but_does_not_configure(operator_api, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    rule = EmailRuleFactory()

    assert operator_api.post(URL, EMAIL, format="json").status_code == 403
    assert operator_api.delete(f"{URL}{rule.pk}/").status_code == 403
    assert operator_api.post(f"{URL}{rule.pk}/test/").status_code == 200


def test_the_list_costs_the_same_queries_for_many_rules(viewer_api, django_assert_max_num_queries):
    EmailRuleFactory(clusters=[ClusterFactory()])
    with django_assert_max_num_queries(10) as few:
        viewer_api.get(URL)
    for _ in range(10):
        SnmpRuleFactory(clusters=[ClusterFactory()])

    with django_assert_max_num_queries(len(few.captured_queries)):
        assert viewer_api.get(URL).json()["count"] == 11


def test_an_admin_deletes_a_rule(admin_api):
    rule = EmailRuleFactory()

    assert admin_api.delete(f"{URL}{rule.pk}/").status_code == 204
    assert not NotificationRule.objects.filter(pk=rule.pk).exists()


def test_the_test_action_answers_the_outcome(admin_api, settings, mailoutbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    rule = EmailRuleFactory(recipients=["noc@example.com"])

    response = admin_api.post(f"{URL}{rule.pk}/test/")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "outcome": "delivered", "error": None}
    assert len(mailoutbox) == 1 and mailoutbox[0].subject.startswith("[TEST]")


def test_the_test_action_answers_502_with_the_error(admin_api, settings):
    from tests.support.agents import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens there
    rule = EmailRuleFactory()

    response = admin_api.post(f"{URL}{rule.pk}/test/")

    assert response.status_code == 502
    assert response.json()["ok"] is False
    assert "SMTP server unreachable" in response.json()["error"]
