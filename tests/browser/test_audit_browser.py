"""The audit log in a real browser: an operator starts maintenance on the cluster page (after its
confirmation step), follows the navigation to the audit log and finds the entry with their name
and the change; filters narrow it.
Screenshot: test-artifacts/screenshots/audit-log.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from audit.models import AuditEntry
from tests.browser.conftest import log_in, screenshot
from tests.factories import ClusterFactory, ServerFactory

pytestmark = pytest.mark.browser


def test_an_operator_finds_their_action_in_the_audit_log(page, live_server_url, users, control_plane_paused):
    cluster = ClusterFactory(name="hq-signs-dmm")
    server = ServerFactory(name="hq-signs-dmm-c")
    AuditEntry.objects.create(
        user=users["admin"],
        username="alice-admin",
        source="admin",
        action="changed",
        object_type="server",
        object_id=server.pk,
        object_name=server.name,
        changes={"intranet_url": ["http://10.0.0.5:8443", "http://10.0.0.6:8443"], "agent_token": "changed"},
    )
    log_in(page, live_server_url, "oscar-operator")

    page.goto(f"{live_server_url}/clusters/{cluster.pk}/")
    page.get_by_role("link", name="Start maintenance…").click()
    expect(page.locator("h1")).to_have_text("Put hq-signs-dmm into maintenance?")
    page.get_by_role("button", name="Start maintenance").click()
    expect(page.get_by_text("maintenance on")).to_be_visible()
    expect(page.locator("[data-maintenance]")).to_contain_text("by oscar-operator")
    page.get_by_role("link", name="Audit log").click()

    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    newest = rows.first
    expect(newest).to_contain_text("oscar-operator")
    expect(newest).to_contain_text("Maintenance on")
    expect(newest).to_contain_text("hq-signs-dmm")
    expect(newest).to_contain_text("maintenance: False → True")
    expect(rows.nth(1)).to_contain_text("agent_token: changed (secret)")
    screenshot(page, "audit-log")

    page.select_option("#f-action", "maintenance_on")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    assert AuditEntry.objects.filter(action="maintenance_on", username="oscar-operator", source="page").exists()
