"""The dashboard and the cluster detail page: every deployment, cluster and server; unacknowledged
counts and timelines in a fixed number of queries; closed to anonymous users and outsiders."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Event
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
