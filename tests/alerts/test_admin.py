"""The admin for rules and deliveries: secrets never rendered, blank keeps them, the log read-only."""

from django.test import Client

from alerts.models import NotificationRule
from tests.alerts.factories import DeliveryFactory, V3RuleFactory


def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_the_rule_change_page_never_shows_secrets(admin_user):
    rule = V3RuleFactory(name="nms-v3")

    page = admin_client(admin_user).get(f"/admin/alerts/notificationrule/{rule.pk}/change/").content.decode()
    listing = admin_client(admin_user).get("/admin/alerts/notificationrule/").content.decode()

    assert "nms-v3" in listing and "user dmsuser" in listing
    for secret in ("dms-auth-key-1", "dms-priv-key-1"):
        assert secret not in page and secret not in listing


def test_saving_with_blank_secrets_keeps_them(admin_user):
    rule = V3RuleFactory(name="nms-v3")
    data = {
        "name": "nms-v3", "channel": "snmp", "enabled": "on", "event_types": '["server_failed"]',
        "min_severity": "info", "recipients": "[]", "host": "127.0.0.1", "port": "16200", "snmp_version": "v3",
        "snmp_mode": "trap", "community": "", "snmp_user": "dmsuser", "auth_protocol": "sha", "auth_key": "",
        "priv_protocol": "aes128", "priv_key": "",
    }  # fmt: skip

    response = admin_client(admin_user).post(f"/admin/alerts/notificationrule/{rule.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = NotificationRule.objects.get(pk=rule.pk)
    assert (rule.snmp_user, rule.auth_key, rule.priv_key) == ("dmsuser", "dms-auth-key-1", "dms-priv-key-1")


def test_deliveries_are_listed_and_read_only(admin_user):
    delivery = DeliveryFactory(status="failed", last_error="SMTP server unreachable")
    client = admin_client(admin_user)

    assert "SMTP server unreachable" in client.get("/admin/alerts/delivery/").content.decode()
    assert client.get(f"/admin/alerts/delivery/{delivery.pk}/change/").status_code == 200
    assert client.get("/admin/alerts/delivery/add/").status_code == 403


def test_the_admin_rule_form_marks_md5_and_des_as_weak(admin_user):
    admin_user.is_superuser = True
    admin_user.save()

    page = admin_client(admin_user).get("/admin/alerts/notificationrule/add/").content.decode()

    assert '<option value="md5">MD5 — weak, avoid</option>' in page
    assert '<option value="des">DES — weak, avoid</option>' in page
