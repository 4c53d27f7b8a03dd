"""The cluster page in a real browser: a running replication job's progress moves without a reload
(htmx, every 2 s) and polling stops when it ends; operators get the buttons, with a confirmation step
for a switchover and the reasons when it is refused; viewers get none. The login page refusing a
locked-out (username, address) pair."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cluster.models import Cluster, ReplicationJob
from tests.browser.conftest import PASSWORD, log_in, screenshot
from tests.factories import ClusterFactory, DeploymentFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def replicating(users, control_plane_paused):
    """A cluster with a job history (a success, a paused shrink) and a job a quarter done."""
    cluster = ClusterFactory(name="hq-signs-dmm", deployment=DeploymentFactory(name="hq-digital-signs"))
    now = timezone.now()
    Cluster.objects.filter(pk=cluster.pk).update(last_replication_at=now - timedelta(minutes=3))
    common = dict(cluster=cluster, source=cluster.primary, target=cluster.secondary, epoch=1)
    history = [
        dict(kind="initial", state="succeeded", files_total=120, files_done=120, bytes_total=9 << 30),
        dict(kind="incremental", state="succeeded", files_total=4, files_done=4, bytes_total=52 << 20),
        dict(
            kind="incremental",
            state="failed",
            error="deletions paused: the primary holds 12 files where the secondary holds 120 (more than half gone); "
            "confirm the deletions on the cluster page or through the API",
        ),
    ]
    for minutes_ago, fields in zip((240, 30, 4), history, strict=True):
        job = ReplicationJob.objects.create(**common, **fields, bytes_done=fields.get("bytes_total", 0))
        started = now - timedelta(minutes=minutes_ago)
        ReplicationJob.objects.filter(pk=job.pk).update(
            started_at=started, finished_at=started + timedelta(seconds=95 if fields["kind"] == "initial" else 7)
        )
    return cluster


def add_running_job(cluster) -> ReplicationJob:
    return ReplicationJob.objects.create(
        cluster=cluster,
        source=cluster.primary,
        target=cluster.secondary,
        epoch=1,
        kind="incremental",
        files_total=40,
        files_done=10,
        bytes_total=800 << 20,
        bytes_done=200 << 20,
    )


def test_a_running_job_moves_on_the_page_and_polling_stops_when_it_ends(page, live_server_url, replicating):
    job = add_running_job(replicating)
    log_in(page, live_server_url, "victor-viewer")

    page.goto(f"{live_server_url}/clusters/{replicating.pk}/")

    expect(page.locator(".progress-text")).to_contain_text("25 %")
    expect(page.locator("table.jobs tbody tr")).to_have_count(4)
    expect(page.get_by_role("button", name="Replicate now")).to_have_count(0)
    expect(page.get_by_text("Switch over")).to_have_count(0)
    expect(page.get_by_text("Confirm deletions")).to_have_count(0)
    screenshot(page, "20-cluster-replication-viewer")

    ReplicationJob.objects.filter(pk=job.pk).update(files_done=30, bytes_done=600 << 20)
    expect(page.locator(".progress-text")).to_contain_text("75 %", timeout=6000)  # no reload: htmx

    ReplicationJob.objects.filter(pk=job.pk).update(
        state="succeeded", files_done=40, bytes_done=800 << 20, finished_at=timezone.now()
    )
    expect(page.get_by_text("No replication job is running.")).to_be_visible(timeout=6000)
    expect(page.locator("#replication[hx-trigger]")).to_have_count(0)  # polling stopped


def test_an_operator_switches_over_and_sees_why_it_is_refused(page, live_server_url, replicating):
    log_in(page, live_server_url, "oscar-operator")
    page.goto(f"{live_server_url}/clusters/{replicating.pk}/")
    expect(page.get_by_role("button", name="Confirm deletions and replicate")).to_be_visible()
    screenshot(page, "21-cluster-replication-operator")

    page.get_by_role("link", name="Switch over…").click()
    expect(page.locator("h1")).to_contain_text("Switch over hq-signs-dmm?")
    screenshot(page, "22-switchover-confirm")
    page.get_by_role("button", name=f"Switch over to {replicating.secondary.name}").click()

    message = page.locator(".messages .error")
    expect(message).to_contain_text("refused")
    expect(message).to_contain_text("The cluster is not active yet")
    screenshot(page, "23-switchover-refused")
    assert Cluster.objects.get(pk=replicating.pk).failover_request is None


def test_the_login_page_says_when_attempts_are_refused(page, live_server_url, users):
    for _ in range(4):
        page.goto(live_server_url + "/login/")
        page.fill("#id_username", "victor-viewer")
        page.fill("#id_password", "not-the-password")
        page.click("button[type=submit]")
        expect(page.locator(".messages .error")).to_contain_text("didn't match")

    page.fill("#id_username", "victor-viewer")
    page.fill("#id_password", "not-the-password")  # the fifth failure locks (victor-viewer, 127.0.0.1) out
    page.click("button[type=submit]")
    page.fill("#id_username", "victor-viewer")
    page.fill("#id_password", PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/login/") and r.request.method == "POST") as answer:
        page.click("button[type=submit]")

    assert answer.value.status == 429
    expect(page.locator(".messages .error")).to_contain_text("Too many failed sign-in attempts")
    screenshot(page, "24-login-throttled")
