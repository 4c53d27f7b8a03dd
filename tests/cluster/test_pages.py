"""The dashboard and the cluster detail page: every deployment, cluster and server; unacknowledged
counts and timelines in a fixed number of queries; closed to anonymous users and outsiders. The
cluster page's replication jobs and operator actions: buttons for operators only, refusals for
viewers, the same outcome as the API actions (cluster/actions.py)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Event
from cluster.models import Cluster, ReplicationJob
from cluster.views import build_timeline
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
    assert '<svg class="timeline"' in page
    assert 'hx-select="#live-dashboard"' in page  # the cards refresh themselves (htmx)


def test_it_counts_unacknowledged_alerts_per_cluster(viewer_pages):
    cluster, quiet = ClusterFactory(), ClusterFactory()
    EventFactory.create_batch(3, cluster=cluster)
    EventFactory(cluster=cluster, acknowledged_at=timezone.now())

    response = viewer_pages.get("/")

    counts = {c.pk: c.unacknowledged for _, clusters in response.context["groups"] for c in clusters}
    assert counts == {cluster.pk: 3, quiet.pk: 0}
    assert response.context["unacknowledged_total"] == 3


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


def _event(kind, minutes_ago, server_id=1):
    return {"type": kind, "created_at": timezone.now() - timedelta(minutes=minutes_ago), "server_id": server_id}


def test_the_timeline_draws_down_stretches_and_failovers():
    now = timezone.now()
    events = [
        _event("server_failed", 600),
        _event("failover_completed", 599),
        _event("server_recovered", 540),
    ]

    timeline = build_timeline(events, now - timedelta(hours=24), now)

    assert [s.state for s in timeline.segments] == ["up", "down", "up"]
    down = timeline.segments[1]
    assert down.x == pytest.approx(1440 - 600, abs=1) and down.width == pytest.approx(60, abs=1)
    assert len(timeline.markers) == 1 and "Failover completed" in timeline.markers[0].title
    assert sum(s.width for s in timeline.segments) == pytest.approx(1440, abs=1)


def test_a_recovery_first_means_the_window_began_down():
    now = timezone.now()

    timeline = build_timeline([_event("server_recovered", 60)], now - timedelta(hours=24), now)

    assert [s.state for s in timeline.segments] == ["down", "up"]


def test_a_quiet_day_is_all_up():
    now = timezone.now()

    timeline = build_timeline([], now - timedelta(hours=24), now)

    assert [(s.state, s.x, s.width) for s in timeline.segments] == [("up", 0, 1440)]


def test_events_of_the_last_day_feed_the_dashboard_timeline(viewer_pages):
    cluster = ClusterFactory()
    EventFactory(cluster=cluster, server=cluster.primary)
    Event.objects.create(
        type="server_recovered", severity="info", cluster=cluster, server=cluster.primary, message="ok"
    )

    response = viewer_pages.get("/")

    decorated = next(c for _, clusters in response.context["groups"] for c in clusters)
    assert [s.state for s in decorated.timeline.segments][-2:] == ["down", "up"]


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


ACTIONS = ["replicate", "switchover", "confirm-deletions"]


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
