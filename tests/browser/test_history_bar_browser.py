"""The 24-hour history bar as a person sees it, where layout decides: a 4-second outage in a
24-hour bar is at least 6 px wide and says its length and times; nothing is drawn before the
cluster was created; after a failover the cluster shows one primary and runs unprotected.
Screenshot: test-artifacts/screenshots/history-bar.png."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import Event
from cluster.models import Cluster, Server
from tests.browser.conftest import log_in, screenshot
from tests.factories import ClusterFactory, EventFactory

pytestmark = pytest.mark.browser

MIN_WIDTH_PX = 6


@pytest.fixture
def failed_over(users, control_plane_paused):
    """A cluster made 6 hours ago whose primary went silent 2 hours ago: 4.4 s without service until
    the failover, running unprotected since."""
    cluster = ClusterFactory(name="hq-signs-dmm", active=True)
    old, new = cluster.primary, cluster.secondary
    now = timezone.now()
    Server.objects.filter(pk=old.pk).update(role="primary", state="down")
    Server.objects.filter(pk=new.pk).update(role="primary", state="up", last_heartbeat_at=now)
    Cluster.objects.filter(pk=cluster.pk).update(
        primary=new,
        secondary=old,
        epoch=2,
        grant_fence_epoch=2,
        state="degraded",
        needs_resync=True,
        created_at=now - timedelta(hours=6),
    )
    declared = now - timedelta(hours=2)
    for kind, at, server, details in (
        ("server_failed", declared, old, {"first_missed_slot_at": declared.timestamp() - 4}),
        ("failover_completed", declared + timedelta(seconds=0.4), new, {"epoch": 2}),
    ):
        event = EventFactory(cluster=cluster, server=server, type=kind, details=details)
        Event.objects.filter(pk=event.pk).update(created_at=at)
    return Cluster.objects.get(pk=cluster.pk)


def test_a_short_outage_shows_and_nothing_is_drawn_before_creation(page, live_server_url, failed_over):
    log_in(page, live_server_url, "victor-viewer")
    card = page.locator(f"[data-cluster-id='{failed_over.pk}']")
    outage = card.locator(".history .stretch-outage")

    expect(outage).to_have_attribute("title", re.compile(r"^Outage 4\.4 s: \d\d:\d\d:\d\d\.\d – \d\d:\d\d:\d\d\.\d "))
    bar = card.locator(".history").bounding_box()
    drawn = outage.bounding_box()
    assert drawn["width"] >= MIN_WIDTH_PX and bar["x"] <= drawn["x"] <= bar["x"] + bar["width"] - MIN_WIDTH_PX
    first = min(box["x"] for box in (s.bounding_box() for s in card.locator(".history .stretch").all()))
    assert first >= bar["x"] + 0.74 * bar["width"]  # created 6 of the 24 hours ago: the first 3/4 empty
    expect(card.locator(".history [data-mark=created]")).to_have_count(1)
    expect(card.locator(".badge", has_text=re.compile(r"^Primary$"))).to_have_count(1)
    expect(card.locator(".badge", has_text="Former primary")).to_have_count(1)
    expect(card.locator("[data-protection=unprotected]")).to_contain_text(
        f"Running unprotected: only {failed_over.primary.name} serves"
    )
    screenshot(page, "history-bar-dashboard")

    card.locator("h3 a").click()
    expect(page.locator(".history-notes li[data-state=outage]")).to_contain_text("Outage 4.4 s")
    expect(page.locator(".history-notes li[data-state=unprotected]")).to_contain_text("– now")
    detail = page.locator(".history .stretch-outage").bounding_box()
    assert detail["width"] >= MIN_WIDTH_PX
    screenshot(page, "history-bar-cluster")
