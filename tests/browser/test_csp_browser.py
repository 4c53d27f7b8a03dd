"""The pages and the Swagger UI under the Content-Security-Policy, in a real browser: every page
works (htmx polling, the SNMP form's version switch, Swagger's operations) and the browser reports
no violation, while an injected inline script is refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot
from tests.factories import ClusterFactory, EventFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def violations(page):
    """Console messages of the browser's CSP enforcement."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if "Content Security Policy" in message.text else None)
    return seen


def test_every_page_works_under_the_policy(page, live_server_url, users, violations):
    cluster = ClusterFactory(name="csp-signs")
    EventFactory(cluster=cluster, message='<script>document.title="pwned"</script> in a check name')
    log_in(page, live_server_url, "alice-admin")

    for path in ["/", f"/clusters/{cluster.pk}/", "/alerts/", "/alerts/rules/", "/admin/cluster/server/add/"]:
        response = page.goto(live_server_url + path)
        assert "script-src 'self'" in response.headers["content-security-policy"], path
    page.goto(live_server_url + "/alerts/rules/new/snmp/")
    expect(page.locator("fieldset[data-snmp-version=v3]")).to_be_hidden()  # the script ran
    page.select_option("#id_snmp_version", "v3")
    expect(page.locator("fieldset[data-snmp-version=v3]")).to_be_visible()
    expect(page.locator("fieldset[data-snmp-version=v2c]")).to_be_hidden()

    page.goto(live_server_url + "/api/docs/")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()  # Swagger UI rendered the schema
    screenshot(page, "csp-swagger-ui")

    assert violations == []


def test_an_injected_inline_script_is_refused(page, live_server_url, users, violations):
    log_in(page, live_server_url, "victor-viewer")

    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.ran = true";
                   document.body.appendChild(s); }"""
    )

    assert page.evaluate("() => window.ran === true") is False
    assert any("script-src" in text for text in violations)
