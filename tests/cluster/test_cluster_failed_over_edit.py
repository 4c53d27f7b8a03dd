"""A failed-over cluster stays editable: the part pairing is checked on the pair as installed, in
either orientation (docs/decisions.md), so an administrator can still put it into maintenance."""

import pytest
from django.db.models import F
from django.test import Client

from cluster.models import Cluster
from tests.factories import ClusterFactory, FailoverServerFactory, ServerFactory


def failed_over(cluster: Cluster) -> Cluster:
    """The database as the failover's commit leaves it: the failover appliance is the primary."""
    Cluster.objects.filter(pk=cluster.pk).update(
        primary=cluster.secondary, secondary=cluster.primary, epoch=F("epoch") + 1, state="degraded"
    )
    cluster.refresh_from_db()
    assert cluster.primary.part_number == "DMM-FA-C210-K9"
    return cluster


@pytest.fixture
def admin_browser(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


def test_the_api_edits_a_failed_over_cluster(admin_api):
    cluster = failed_over(ClusterFactory())

    response = admin_api.patch(
        f"/api/v1/clusters/{cluster.pk}/", {"maintenance": True, "heartbeat_interval": 1.0}, format="json"
    )

    assert response.status_code == 200, response.content
    cluster.refresh_from_db()
    assert cluster.maintenance is True and cluster.heartbeat_interval == 1.0


def test_the_api_edits_a_server_of_a_failed_over_cluster(admin_api):
    cluster = failed_over(ClusterFactory())

    response = admin_api.patch(
        f"/api/v1/servers/{cluster.primary.pk}/", {"web_url": "https://dmm-b.example.com/"}, format="json"
    )

    assert response.status_code == 200, response.content


def test_the_admin_edits_a_failed_over_cluster(admin_browser):
    cluster = failed_over(ClusterFactory())
    form = {
        "name": cluster.name,
        "application": "dmm",
        "primary": cluster.primary.pk,
        "secondary": cluster.secondary.pk,
        "deployment": "",
        "maintenance": "on",
        "heartbeat_interval": 2.0,
        "missed_heartbeats_threshold": 3,
        "recovery_threshold": 2,
        "max_grant_delay": 0.25,
        "max_clock_skew": 0.1,
        "replication_interval": 120,
    }

    response = admin_browser.post(f"/admin/cluster/cluster/{cluster.pk}/change/", form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    cluster.refresh_from_db()
    assert cluster.maintenance is True and cluster.replication_interval == 120


def test_an_installed_pair_with_a_wrong_part_is_still_refused(admin_api):
    cluster = failed_over(ClusterFactory())
    cluster.secondary.part_number = "SNS-SVR-C210EN-K9"  # not the DMM-FA part's partner
    cluster.secondary.save()

    response = admin_api.patch(f"/api/v1/clusters/{cluster.pk}/", {"maintenance": True}, format="json")

    assert response.status_code == 400
    assert "pairs with a DMM-SVR-C210-K9 appliance, not SNS-SVR-C210EN-K9" in response.json()["secondary"][0]


def test_a_new_cluster_still_needs_the_primary_part_on_its_primary(admin_api):
    payload = {
        "name": "upside-down",
        "application": "dmm",
        "primary": FailoverServerFactory().pk,
        "secondary": ServerFactory().pk,
    }

    response = admin_api.post("/api/v1/clusters/", payload, format="json")

    assert response.status_code == 400
    assert "DMM-FA-C210-K9 is not a primary part" in response.json()["primary"][0]
