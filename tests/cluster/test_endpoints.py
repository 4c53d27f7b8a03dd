"""The end users' entry URL, the current-primary endpoint for scripts and Prometheus' /metrics."""

import re

from django.test import Client

from cluster import metrics
from cluster.models import Cluster
from tests.factories import ClusterFactory


def test_go_redirects_to_the_current_primary_without_login(db):
    cluster = ClusterFactory(name="dmm-prod")

    response = Client().get("/go/dmm-prod/")

    assert response.status_code == 302
    assert response["Location"] == cluster.primary.intranet_url
    assert response["Cache-Control"] == "no-store"
    assert Client().get("/go/nothing/").status_code == 404


def test_go_prefers_the_primarys_application_address_and_follows_a_failover(db):
    """intranet_url is the agent's address: users belong on the application (web_url) when one is set."""
    cluster = ClusterFactory(
        name="dmm-web",
        primary__web_url="https://dmm-a.example.com/",
        secondary__web_url="https://dmm-b.example.com/",
    )

    before = Client().get("/go/dmm-web/")
    # What the failover commit writes (cluster/failover.py): the secondary becomes the primary.
    Cluster.objects.filter(pk=cluster.pk).update(primary=cluster.secondary, secondary=cluster.primary)
    after = Client().get("/go/dmm-web/")

    assert before.status_code == 302 and before["Location"] == "https://dmm-a.example.com/"
    assert after.status_code == 302 and after["Location"] == "https://dmm-b.example.com/"
    assert after["Cache-Control"] == "no-store"


def test_go_falls_back_to_the_intranet_url_of_a_primary_without_web_url(db):
    cluster = ClusterFactory(name="dmm-mixed", secondary__web_url="https://dmm-b.example.com/")

    response = Client().get("/go/dmm-mixed/")

    assert cluster.primary.web_url == ""
    assert response.status_code == 302 and response["Location"] == cluster.primary.intranet_url


def test_the_primary_endpoint_names_the_current_primary(viewer_api):
    cluster = ClusterFactory()

    response = viewer_api.get(f"/api/v1/clusters/{cluster.pk}/primary/")

    assert response.status_code == 200 and response.json()["name"] == cluster.primary.name
    assert "agent_token" not in response.json()


def test_metrics_need_the_bearer_token(db, settings):
    settings.METRICS_TOKEN = "prometheus-secret"
    ClusterFactory(name="measured")

    refused = Client().get("/metrics")
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    scraped = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer prometheus-secret")

    assert refused.status_code == 401 and wrong.status_code == 401
    assert scraped.status_code == 200
    text = scraped.content.decode()
    for name in (
        "dms_heartbeat_probes",
        "dms_heartbeat_probe_latency_seconds_bucket",
        "dms_failovers",
        "dms_failover_duration_seconds",
        "dms_server_info",
    ):
        assert name in text
    assert 'dms_cluster_epoch{cluster="measured",state="syncing"} 1.0' in text


def _buckets(text: str, metric: str) -> dict[str, float]:
    return {le: float(v) for le, v in re.findall(rf'^{metric}_bucket{{le="([^"]+)"}} (\S+)$', text, re.MULTILINE)}


def _grown(before: str, after: str, metric: str) -> dict[str, float]:
    old = _buckets(before, metric)
    return {le: count - old.get(le, 0.0) for le, count in _buckets(after, metric).items()}


def test_probe_latencies_and_failover_durations_land_in_their_histogram_buckets(db, settings):
    settings.METRICS_TOKEN = "prometheus-secret"

    def scrape() -> str:
        return Client().get("/metrics", HTTP_AUTHORIZATION="Bearer prometheus-secret").content.decode()

    before = scrape()
    metrics.record_probes({"answered": 3}, [0.004, 0.02, 3.0])
    metrics.record_failover("completed", "missed_heartbeats", 2.5)
    after = scrape()

    latency = "dms_heartbeat_probe_latency_seconds"
    grown = _grown(before, after, latency)
    assert (grown["0.005"], grown["0.025"], grown["2.5"], grown["+Inf"]) == (1, 2, 2, 3)
    duration = "dms_failover_duration_seconds"
    grown = _grown(before, after, duration)
    assert (grown["2.0"], grown["3.0"], grown["+Inf"]) == (0, 1, 1)


def test_metrics_are_closed_when_no_token_is_configured(db, settings):
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_switchover_is_refused_with_reasons_for_a_cluster_not_yet_active(operator_api):
    cluster = ClusterFactory()

    response = operator_api.post(f"/api/v1/clusters/{cluster.pk}/switchover/")

    assert response.status_code == 409
    assert any("not active yet" in reason for reason in response.json()["reasons"])


def test_a_viewer_cannot_switch_over(viewer_api):
    cluster = ClusterFactory()

    assert viewer_api.post(f"/api/v1/clusters/{cluster.pk}/switchover/").status_code == 403
