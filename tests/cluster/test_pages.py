"""The dashboard and the cluster detail page: every deployment, cluster and server; unacknowledged
counts by severity and history bars in a fixed number of queries; closed to anonymous users and
outsiders. Pages that cannot mislead: one primary per cluster (the old one "former primary, fenced
at epoch N"), bars that start when the cluster did, "running unprotected" while degraded. The
cluster page's replication jobs and operator actions: buttons for operators only, refusals for
viewers, the same outcome as the API actions (cluster/actions.py); maintenance confirmed first."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Event
from audit.models import AuditEntry
from cluster.models import Cluster, ReplicationJob, Server
from tests.factories import ClusterFactory, DeploymentFactory, EventFactory


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_pages(viewer_user):
    return client_for(viewer_user)


def test_it_is_closed(db, outsider_user):
    cluster = ClusterFactory()

    assert Client().get("/")["Location"].startswith("/login/")
    assert Client().get(f"/clusters/{cluster.pk}/").status_code == 302
    assert client_for(outsider_user).get("/").status_code == 403


def test_the_dashboard_shows_deployments_clusters_and_both_servers(viewer_pages):
    deployment = DeploymentFactory(name="signs-hq")
    cluster = ClusterFactory(name="signs-hq-dmm", deployment=deployment)
    lonely = ClusterFactory(name="lab-dmm")

    page = viewer_pages.get("/").content.decode()

    assert "signs-hq" in page and "Digital Signs" in page
    assert "signs-hq-dmm" in page and "Clusters without a deployment" in page and "lab-dmm" in page
    for server in (cluster.primary, cluster.secondary, lonely.primary):
        assert server.name in page
    assert "Replication lag <b>—</b>" in page
    assert f'href="/clusters/{cluster.pk}/"' in page
    assert '<div class="history" role="img"' in page
    assert 'hx-select="#live-dashboard"' in page  # the cards refresh themselves (htmx)


def test_it_counts_unacknowledged_alerts_per_cluster_by_severity(viewer_pages):
    cluster, quiet = ClusterFactory(), ClusterFactory()
    EventFactory(cluster=cluster, type="server_failed")
    EventFactory.create_batch(2, cluster=cluster, type="component_failed")
    EventFactory.create_batch(3, cluster=cluster, type="server_recovered")
    EventFactory(cluster=cluster, type="server_failed", acknowledged_at=timezone.now())
    EventFactory(cluster=None, type="clock_skew_detected")  # the control plane's own clock

    response = viewer_pages.get("/")
    page = response.content.decode()

    counts = {c.pk: c.open_alerts for _, clusters in response.context["groups"] for c in clusters}
    assert (counts[cluster.pk].critical, counts[cluster.pk].warning, counts[cluster.pk].info) == (1, 2, 3)
    assert counts[quiet.pk].total == 0
    card = _card(page, cluster)
    for severity, text in (("critical", "1 critical"), ("warning", "2 warning"), ("info", "3 info")):
        link = f"/alerts/?cluster={cluster.pk}&amp;acknowledged=false&amp;severity={severity}"
        assert f'href="{link}"' in card and f">{text}</a>" in card
    assert 'title="No unacknowledged alerts">0<' in _card(page, quiet)
    totals = response.context["open_alerts"]
    assert (totals.critical, totals.warning, totals.info) == (1, 3, 3)  # as many as the linked list shows
    assert '<span class="value">1</span> critical' in page and '<span class="value">3</span> warning' in page


def _card(page: str, cluster) -> str:
    start = page.index(f'data-cluster-id="{cluster.pk}"')
    return page[start : page.index("</article>", start)]


def test_the_dashboard_costs_the_same_queries_for_many_clusters(viewer_pages, django_assert_max_num_queries):
    deployment = DeploymentFactory()
    ClusterFactory(deployment=deployment)
    with django_assert_max_num_queries(12) as few:
        viewer_pages.get("/")
    for _ in range(8):
        cluster = ClusterFactory(deployment=deployment if _ % 2 else None)
        EventFactory(cluster=cluster)

    with django_assert_max_num_queries(len(few.captured_queries)):
        viewer_pages.get("/")


def test_the_cluster_page_shows_servers_settings_and_events(viewer_pages):
    cluster = ClusterFactory(name="signs-1", heartbeat_interval=1.5)
    EventFactory(cluster=cluster, message="dmm-001 is silent")
    EventFactory(message="another cluster's event")

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert cluster.primary.name in page and cluster.secondary.name in page
    assert "1.5 s" in page and "dmm-001 is silent" in page
    assert "another cluster&#x27;s event" not in page and "another cluster's event" not in page
    assert f'href="/alerts/?cluster={cluster.pk}"' in page
    assert viewer_pages.get("/clusters/999999/").status_code == 404


def test_the_cluster_page_links_the_application_of_a_server_with_web_url(viewer_pages):
    cluster = ClusterFactory(primary__web_url="https://dmm-a.example.com/")

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert 'href="https://dmm-a.example.com/"' in page and "Open application" in page
    assert "no web URL set" in page  # the secondary has none


def _failed_over(**fields):
    """A cluster after a failover: the old primary's agent last said "primary", then went silent."""
    cluster = ClusterFactory(name="hq-signs", active=True, **fields)
    old, new = cluster.primary, cluster.secondary
    Server.objects.filter(pk=old.pk).update(role="primary", state="down")
    Server.objects.filter(pk=new.pk).update(role="primary", state="up")
    Cluster.objects.filter(pk=cluster.pk).update(
        primary=new, secondary=old, epoch=2, grant_fence_epoch=2, state="degraded", needs_resync=True
    )
    return Cluster.objects.get(pk=cluster.pk)


PRIMARY_BADGE = '<span class="dot" aria-hidden="true"></span>Primary</span>'


def test_after_a_failover_the_old_primary_is_the_former_primary_fenced_at_the_epoch(viewer_pages):
    cluster = _failed_over()

    dashboard = _card(viewer_pages.get("/").content.decode(), cluster)
    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert dashboard.count(PRIMARY_BADGE) == 1 and page.count(PRIMARY_BADGE) == 1
    assert "Former primary</span>" in dashboard and "Fenced at epoch 2" in dashboard
    assert f"Secondary: {cluster.secondary.name}" in page and "Former primary</span>" in page
    assert '<dd data-role="former_primary">Former primary, fenced at epoch 2: no lease is granted below epoch 2' in page


def test_a_degraded_cluster_says_it_runs_unprotected_and_why(viewer_pages):
    cluster = _failed_over()
    healthy = ClusterFactory()
    Cluster.objects.filter(pk=healthy.pk).update(state="healthy")

    response = viewer_pages.get("/")
    dashboard = response.content.decode()
    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    expected = (
        f"<strong>Running unprotected: only {cluster.primary.name} serves</strong>: {cluster.secondary.name} is down; "
        f"{cluster.secondary.name} must be resynced from {cluster.primary.name}."
    )
    assert expected in _card(dashboard, cluster) and expected in page
    assert "data-protection" not in _card(dashboard, healthy)
    assert response.context["unprotected_count"] == 1


def test_a_degraded_cluster_with_its_primary_down_is_not_called_unprotected(viewer_pages):
    cluster = ClusterFactory(maintenance=True)
    Server.objects.filter(pk=cluster.primary_id).update(state="down")
    Cluster.objects.filter(pk=cluster.pk).update(state="degraded")

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert f"Primary down: {cluster.primary.name} does not answer heartbeats" in page
    assert "the cluster is in maintenance: no automatic failover" in page
    assert "<strong>Running unprotected" not in page


def _lefts(html: str, state: str) -> list[float]:
    return [float(x) for x in re.findall(rf'data-state="{state}" style="left:min\(([0-9.]+)%', html)]


def test_the_history_bar_starts_when_the_cluster_was_created(viewer_pages):
    cluster = ClusterFactory()
    Cluster.objects.filter(pk=cluster.pk).update(active=True, created_at=timezone.now() - timedelta(hours=6))

    card = _card(viewer_pages.get("/").content.decode(), cluster)

    assert _lefts(card, "up") == [pytest.approx(75, abs=0.1)]
    assert 'data-mark="created"' in card and "Cluster created at" in card


def test_a_short_outage_is_drawn_and_told_with_its_times_and_length(viewer_pages):
    cluster = _failed_over()
    Cluster.objects.filter(pk=cluster.pk).update(created_at=timezone.now() - timedelta(days=3))
    declared = timezone.now() - timedelta(hours=2)
    for kind, at, server, details in (
        ("server_failed", declared, cluster.secondary, {"first_missed_slot_at": declared.timestamp() - 4}),
        ("failover_completed", declared + timedelta(seconds=0.4), cluster.primary, {"epoch": 2}),
    ):
        event = EventFactory(cluster=cluster, server=server, type=kind, details=details)
        Event.objects.filter(pk=event.pk).update(created_at=at)

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert len(_lefts(page, "outage")) == 1 and len(_lefts(page, "unprotected")) == 1
    assert re.search(r'title="Outage 4\.4 s: \d\d:\d\d:\d\d\.\d – \d\d:\d\d:\d\d\.\d \(the primary', page)
    assert '<li data-state="outage"><i class="key-outage"></i><b>Outage 4.4 s</b>' in page
    assert "<b>Running unprotected 2 h 0 min</b>" in page and "– now" in page


def test_events_of_the_last_day_feed_the_dashboard_bar(viewer_pages):
    cluster = ClusterFactory(active=True)
    Cluster.objects.filter(pk=cluster.pk).update(created_at=timezone.now() - timedelta(days=2))
    EventFactory(cluster=cluster, server=cluster.secondary)
    Event.objects.create(
        type="server_recovered", severity="info", cluster=cluster, server=cluster.secondary, message="ok"
    )

    response = viewer_pages.get("/")

    decorated = next(c for _, clusters in response.context["groups"] for c in clusters)
    assert [s.state for s in decorated.history.stretches][-2:] == ["unprotected", "up"]


# -- replication and operator actions (DESIGN §5, §6: the page does what the API actions do) ------


@pytest.fixture
def operator_pages(operator_user):
    return client_for(operator_user)


@pytest.fixture
def queued(monkeypatch):
    """The Celery tasks the actions start, recorded instead of sent."""
    calls = []
    monkeypatch.setattr("cluster.actions.replicate.delay", lambda *a: calls.append(("replicate", a)))
    monkeypatch.setattr(
        "cluster.actions.run_failover.apply_async", lambda args, **kw: calls.append(("run_failover", args))
    )
    return calls


def _job(cluster, **fields):
    values = dict(kind="incremental", source=cluster.primary, target=cluster.secondary, epoch=cluster.epoch)
    return ReplicationJob.objects.create(cluster=cluster, **{**values, **fields})


ACTIONS = ["replicate", "switchover", "confirm-deletions", "maintenance"]


def test_a_viewer_sees_no_buttons_and_is_refused_every_action(viewer_pages, queued):
    cluster = ClusterFactory()
    _job(cluster, state="failed", error="deletions paused: the primary holds 1 files where ...")

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert "Deletions paused" in page
    for label in ("Replicate now", "Switch over", "Confirm deletions"):
        assert label not in page
    for action in ACTIONS:
        assert viewer_pages.post(f"/clusters/{cluster.pk}/{action}/").status_code == 403
    assert viewer_pages.get(f"/clusters/{cluster.pk}/switchover/").status_code == 403
    assert viewer_pages.get(f"/clusters/{cluster.pk}/maintenance/").status_code == 403
    assert "maintenance…" not in page
    assert queued == []
    assert Cluster.objects.get(pk=cluster.pk).deletions_confirmed is False


def test_anonymous_actions_go_to_the_login_page(db, queued):
    cluster = ClusterFactory()

    for action in ACTIONS:
        assert Client().post(f"/clusters/{cluster.pk}/{action}/")["Location"].startswith("/login/")
    assert queued == []


def test_an_operator_sees_the_buttons(operator_pages):
    cluster = ClusterFactory()

    page = operator_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert f'action="/clusters/{cluster.pk}/replicate/"' in page and "Replicate now" in page
    assert f'href="/clusters/{cluster.pk}/switchover/"' in page
    assert "Confirm deletions" not in page  # nothing is paused
    assert "csrfmiddlewaretoken" in page


def test_the_maintenance_switch_asks_first_and_names_who_turned_it_on(operator_pages):
    cluster = ClusterFactory(name="signs-1")
    page = operator_pages.get(f"/clusters/{cluster.pk}/").content.decode()
    assert f'href="/clusters/{cluster.pk}/maintenance/"' in page and "Start maintenance…" in page
    assert f'action="/clusters/{cluster.pk}/maintenance/"' not in page  # no one-click switch

    confirm = operator_pages.get(f"/clusters/{cluster.pk}/maintenance/").content.decode()
    assert "Put signs-1 into maintenance?" in confirm
    assert "No automatic failover." in confirm and "No notifications" in confirm and "audit log" in confirm
    assert 'name="maintenance" value="on"' in confirm
    assert Cluster.objects.get(pk=cluster.pk).maintenance is False  # looking changes nothing

    url = f"/clusters/{cluster.pk}/maintenance/"
    page = operator_pages.post(url, {"maintenance": "on"}, follow=True).content.decode()

    entry = AuditEntry.objects.get(action="maintenance_on", object_id=cluster.pk)
    assert (entry.username, entry.source) == ("oscar-operator", "page")
    assert Cluster.objects.get(pk=cluster.pk).maintenance is True
    since = f"{timezone.localtime(entry.created_at):%Y-%m-%d %H:%M:%S}"
    assert f"In maintenance since {since}, by oscar-operator</strong>: no automatic failover" in page
    assert "End maintenance…" in page
    confirm = operator_pages.get(url).content.decode()
    assert "End maintenance of signs-1?" in confirm and 'name="maintenance" value="off"' in confirm


def test_an_operator_queues_a_replication_job(operator_pages, queued):
    cluster = ClusterFactory()

    response = operator_pages.post(f"/clusters/{cluster.pk}/replicate/", follow=True)

    assert queued == [("replicate", (cluster.pk,))]
    assert "replication job queued" in response.content.decode()
    assert operator_pages.get(f"/clusters/{cluster.pk}/replicate/").status_code == 405


def test_an_operator_confirms_paused_deletions(operator_pages, queued):
    cluster = ClusterFactory()
    _job(cluster, state="failed", error="deletions paused: the primary holds 1 files where the secondary holds 9")

    page = operator_pages.get(f"/clusters/{cluster.pk}/").content.decode()
    assert "Confirm deletions and replicate" in page and "Deletions paused" in page

    response = operator_pages.post(f"/clusters/{cluster.pk}/confirm-deletions/", follow=True)

    assert Cluster.objects.get(pk=cluster.pk).deletions_confirmed is True
    assert queued == [("replicate", (cluster.pk,))]
    assert "deletions confirmed" in response.content.decode()


def test_a_refused_switchover_shows_its_reasons(operator_pages, queued):
    cluster = ClusterFactory()  # still syncing, servers unknown

    confirm = operator_pages.get(f"/clusters/{cluster.pk}/switchover/").content.decode()
    assert f"Switch over to {cluster.secondary.name}" in confirm

    page = operator_pages.post(f"/clusters/{cluster.pk}/switchover/", follow=True).content.decode()

    assert "Switchover of" in page and "refused" in page
    assert "The cluster is not active yet" in page
    assert f"The primary {cluster.primary.name} is unknown." in page
    assert queued == []
    assert Cluster.objects.get(pk=cluster.pk).failover_request is None


def test_an_accepted_switchover_writes_the_request_and_queues_the_failover(operator_pages, queued, monkeypatch):
    cluster = ClusterFactory()
    monkeypatch.setattr("cluster.actions.preflight_switchover", lambda cluster: [])

    page = operator_pages.post(f"/clusters/{cluster.pk}/switchover/", follow=True).content.decode()

    assert "Switchover of" in page and "started" in page
    assert queued == [("run_failover", (cluster.pk,))]
    assert Cluster.objects.get(pk=cluster.pk).failover_request["cause"] == "switchover"

    again = operator_pages.post(f"/clusters/{cluster.pk}/switchover/", follow=True).content.decode()
    assert "already in progress" in again
    assert len(queued) == 1


def test_the_page_shows_a_running_job_and_polls_it(viewer_pages):
    cluster = ClusterFactory()
    _job(cluster, state="succeeded", files_done=3, files_total=3, bytes_done=2048, bytes_total=2048)
    _job(cluster, state="failed", error="dmm-001 did not answer /v1/inventory")
    _job(cluster, files_total=40, files_done=10, bytes_total=4_000_000, bytes_done=1_000_000)

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert 'role="progressbar"' in page and 'style="width: 25.0%"' in page
    assert "25 %" in page and "10 of 40 files" in page and "976.6\xa0KB of 3.8\xa0MB" in page
    assert f'hx-get="/clusters/{cluster.pk}/replication/" hx-trigger="every 2s"' in page
    assert "dmm-001 did not answer /v1/inventory" in page
    assert page.count("<tr data-job-id=") == 3
    for word in ("Running", "Succeeded", "Failed"):
        assert f"</span>{word}</span>" in page


def test_the_fragment_stops_polling_when_no_job_runs(viewer_pages, django_assert_max_num_queries):
    cluster = ClusterFactory()
    _job(cluster, state="succeeded")

    with django_assert_max_num_queries(6):
        fragment = viewer_pages.get(f"/clusters/{cluster.pk}/replication/").content.decode()

    assert fragment.startswith('\n<div id="replication">') or '<div id="replication">' in fragment
    assert "hx-trigger" not in fragment and "No replication job is running." in fragment
    assert "<html" not in fragment


def test_the_history_holds_the_last_twenty_jobs(viewer_pages):
    cluster = ClusterFactory()
    for _ in range(25):
        _job(cluster, state="succeeded")

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert page.count("<tr data-job-id=") == 20


def test_the_replication_block_shows_state_lag_and_current(viewer_pages):
    cluster = ClusterFactory(replication_interval=60)
    Cluster.objects.filter(pk=cluster.pk).update(last_replication_at=timezone.now() - timedelta(seconds=30))
    _job(cluster, state="succeeded")

    page = viewer_pages.get(f"/clusters/{cluster.pk}/").content.decode()

    assert "<dd data-replication-state>Succeeded</dd>" in page
    assert "<dt>Current</dt><dd>Yes" in page and "30 s</dd>" in page
