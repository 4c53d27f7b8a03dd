"""The pages in a real browser: log in, the dashboard, filter and acknowledge alerts, live updates,
rule forms with their errors, send a test. A screenshot of every page for review."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.events import record_event
from alerts.models import Event, NotificationRule
from cluster.models import Cluster
from tests.alerts.factories import SAFE_DEFAULTS
from tests.browser.conftest import log_in, screenshot
from tests.factories import ClusterFactory, DeploymentFactory, EventFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def estate(users):
    """Two deployments, three clusters, a day of events."""
    signs = DeploymentFactory(name="hq-digital-signs")
    cluster = ClusterFactory(name="hq-signs-dmm", deployment=signs)
    sns = DeploymentFactory(name="campus-show-and-share", kind="show_and_share")
    ClusterFactory(name="campus-dmm", deployment=sns)
    from tests.factories import FailoverServerFactory, ServerFactory

    sns_primary = ServerFactory(name="sns-001", application="sns", part_number="SNS-SVR-C210EN-K9")
    sns_secondary = FailoverServerFactory(name="sns-fa-001", application="sns", part_number="SNS-FA-C210EN-K9")
    ClusterFactory(name="campus-sns", application="sns", deployment=sns, primary=sns_primary, secondary=sns_secondary)
    failure = record_event(
        "server_failed",
        f"{cluster.primary.name} missed 3 consecutive heartbeats.",
        cluster=cluster,
        server=cluster.primary,
        details={"missed_slots": 3, "interval_s": 2.0, "last_answer": "2026-11-25T19:58:01Z", "witness": "silent"},
    )
    record_event(
        "failover_completed",
        f"{cluster.secondary.name} promoted to primary at epoch 2.",
        cluster=cluster,
        server=cluster.secondary,
    )
    record_event(
        "server_recovered",
        f"{cluster.primary.name} answers again.",
        cluster=cluster,
        server=cluster.primary,
        recovers=failure,
    )
    record_event("component_failed", "Disk 2 of dmm-001 reports SMART errors.", cluster=cluster, server=cluster.primary)
    record_event("replication_failed", "Replication to the secondary failed: connection reset.", cluster=cluster)
    # Spread them over the day, for the history bar and the list, in a cluster made the day before.
    now = timezone.now()
    Cluster.objects.filter(pk=cluster.pk).update(created_at=now - timedelta(days=2))
    for event, hours_ago in zip(Event.objects.order_by("id"), (9, 8.98, 7.5, 3, 1), strict=True):
        Event.objects.filter(pk=event.pk).update(created_at=now - timedelta(hours=hours_ago))
    return cluster


def test_log_in_and_see_the_dashboard_and_a_cluster(page, live_server_url, estate):
    page.goto(live_server_url + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    log_in(page, live_server_url, "victor-viewer", shot="01-login")

    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".deployment h2").first).to_contain_text("campus-show-and-share")
    card = page.locator(f"[data-cluster-id='{estate.pk}']")
    expect(card.locator(".count")).to_have_text(["2 critical", "2 warning", "1 info"])
    expect(card.locator(".history .stretch-outage")).to_have_count(1)
    screenshot(page, "02-dashboard")

    card.locator("h3 a").click()
    expect(page.locator("h1")).to_contain_text("hq-signs-dmm")
    screenshot(page, "03-cluster-detail")


def test_filter_and_acknowledge_alerts_and_see_new_ones_arrive(page, live_server_url, estate):
    log_in(page, live_server_url, "oscar-operator")
    page.click("nav >> text=Alerts")
    rows = page.locator("#event-rows tr")
    expect(rows).to_have_count(5)
    screenshot(page, "04-alerts")

    page.select_option("#f-severity", "warning")
    page.click("#filters button[type=submit]")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"severity=warning"))
    screenshot(page, "05-alerts-filtered")

    component = Event.objects.get(type="component_failed")
    page.locator(f"tr[data-event-id='{component.pk}'] button[name=one]").click()
    expect(page.locator(".messages")).to_contain_text("Acknowledged 1 event.")
    expect(page.locator(f"tr[data-event-id='{component.pk}']")).to_contain_text("oscar-operator")
    assert Event.objects.get(pk=component.pk).acknowledged_by.username == "oscar-operator"

    page.goto(live_server_url + "/alerts/")
    page.locator("input[name=ids]").nth(0).check()
    page.locator("input[name=ids]").nth(1).check()
    page.click("text=Acknowledge selected")
    expect(page.locator(".messages")).to_contain_text("Acknowledged 2 events.")

    arrived = EventFactory(cluster=estate, message="A brand-new event while the page is open.")
    expect(page.locator(f"tr[data-event-id='{arrived.pk}']")).to_be_visible(timeout=15_000)  # htmx polling
    screenshot(page, "06-alerts-live-update")

    page.locator(
        f"tr[data-event-id='{Event.objects.filter(type='server_failed').order_by('id').first().pk}'] td:nth-child(4) a"
    ).click()
    expect(page.locator("dl.evidence")).to_contain_text("Missed heartbeats in a row")
    screenshot(page, "07-event-detail")
    page.click(".card >> text=hq-signs-dmm")
    expect(page.locator("h1")).to_contain_text("hq-signs-dmm")


def test_a_viewer_has_no_acknowledge_buttons(page, live_server_url, estate):
    log_in(page, live_server_url, "victor-viewer")
    page.goto(live_server_url + "/alerts/")

    expect(page.locator("#event-rows tr")).to_have_count(5)
    expect(page.locator("text=Acknowledge selected")).to_have_count(0)
    expect(page.locator("button[name=one]")).to_have_count(0)


def test_create_rules_through_the_forms_and_send_a_test(page, live_server_url, estate, smtp_for_web):
    log_in(page, live_server_url, "alice-admin")
    page.click("nav >> text=Notification rules")
    expect(page.locator("#engine-id")).to_have_text("80007ed905627277736572")
    screenshot(page, "08-rules-empty")

    page.click("text=New SNMP rule")
    expect(page.locator("input[value=server_failed]")).to_be_checked()
    expect(page.locator("input[value=server_recovered]")).to_be_checked()
    expect(page.locator("input[value=failover_completed]")).to_be_checked()  # safe default
    expect(page.locator("input[value=licenses_copied]")).not_to_be_checked()
    page.fill("#id_name", "noc-nms")
    page.uncheck("input[value=component_failed]")
    page.check("input[value=licenses_copied]")
    page.fill("#id_host", "nms .example.com")
    page.fill("#id_community", "s3cret-community")
    page.click("text=Create rule")
    expect(page.locator("#field-host .errorlist")).to_contain_text("is not a hostname or an IP address")
    screenshot(page, "09-rule-form-error")

    page.fill("#id_host", "127.0.0.1")
    page.fill("#id_community", "s3cret-community")  # never rendered back: typed again
    page.select_option("#id_snmp_mode", "trap")
    page.click("text=Create rule")
    expect(page.locator(".messages")).to_contain_text("Rule “noc-nms” created.")
    rule = NotificationRule.objects.get(name="noc-nms")
    assert rule.event_types == [t for t in SAFE_DEFAULTS if t != "component_failed"] + ["licenses_copied"]

    page.click("text=New email rule")
    page.fill("#id_name", "noc-mail")
    page.fill("#id_recipients", "noc@example.com\noncall@example.com")
    page.check(f"input[name=clusters][value='{estate.pk}']")
    screenshot(page, "10-rule-form-email")
    page.click("text=Create rule")
    expect(page.locator(".messages")).to_contain_text("Rule “noc-mail” created.")

    mail_rule = NotificationRule.objects.get(name="noc-mail")
    page.locator(f"tr[data-rule-id='{mail_rule.pk}'] >> text=Send test").click()
    expect(page.locator(".messages")).to_contain_text("Test notification of “noc-mail” delivered")
    smtp_for_web.wait_for(lambda mail: mail.subject.startswith("[TEST]"), timeout=10)
    assert "s3cret-community" not in page.content()
    screenshot(page, "11-rules")

    page.locator(f"tr[data-rule-id='{rule.pk}'] >> text=Edit").click()
    expect(page.locator("#id_community")).to_have_value("")
    screenshot(page, "12-rule-edit")
