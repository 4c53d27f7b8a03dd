"""The story of a real failover in a real browser: the primary's agent is killed, the control plane
fails over, and the cluster page, the incident's page and the failure's and the failover's event
pages tell it readably and link to each other. Screenshots: test-artifacts/screenshots/2x-*.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from alerts.models import Event
from cluster.models import IncidentStep
from tests.browser.conftest import log_in, screenshot
from tests.support.agents import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration]

UNIX_TIME = re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b")


def test_the_story_of_a_real_failover_reads_in_the_browser(page, live_server_url, users, make_cluster):
    under_test = make_cluster("hq-story")
    cluster = under_test.cluster
    under_test.wait_both_heard()
    under_test.primary_agent.kill()
    under_test.wait_state(lambda c: c.epoch == 2 and c.state != "failing_over", 30, "the failover")
    wait_until(
        lambda: IncidentStep.objects.filter(incident__cluster=cluster, kind="demoted").exists(),
        10,
        interval=0.1,
        message="the old primary's demotion told",
    )
    failure = Event.objects.get(cluster=cluster, type="server_failed")
    failover = Event.objects.get(cluster=cluster, type="failover_completed")

    log_in(page, live_server_url, "victor-viewer")
    page.goto(f"{live_server_url}/clusters/{cluster.pk}/")
    story = page.locator("section.story")
    expect(story.locator("h2")).to_have_text("Last incident")
    expect(story).to_contain_text("hq-story-b took over from hq-story-a after missed heartbeats")
    expect(story).to_contain_text("Users without service")
    for kind in ("last_answer", "missed", "failure", "claimed", "wait", "promoted", "committed", "demoted"):
        expect(story.locator(f"tr.step-{kind}").first).to_be_visible()
    expect(story.locator("tr.step-promoted td.time").first).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
    assert not UNIX_TIME.search(story.inner_text())
    screenshot(page, "20-incident-on-the-cluster-page")

    story.locator(f"a[href='/alerts/{failure.pk}/']").first.click()
    expect(page.locator("h1")).to_contain_text("Server failed")
    expect(page.locator("section.story h2")).to_have_text("The incident of this event")
    expect(page.locator("dl.evidence")).to_contain_text("Missed heartbeats in a row")
    assert not UNIX_TIME.search(page.locator("main").inner_text())
    screenshot(page, "21-incident-on-the-failure-event")

    page.locator(f"section.story a[href='/alerts/{failover.pk}/']").first.click()
    expect(page.locator("h1")).to_contain_text("Failover completed")
    expect(page.locator("section.story")).to_contain_text("(this event)")
    expect(page.locator(f"section.story a[href='/alerts/{failure.pk}/']").first).to_be_visible()
    assert not UNIX_TIME.search(page.locator("main").inner_text())
    screenshot(page, "22-incident-on-the-failover-event")

    page.click("text=Open this incident →")
    expect(page.locator("h1")).to_contain_text("Failover of hq-story")
    screenshot(page, "23-incident-page")
