"""Every refusal rule of DESIGN §2, through the REST API: 400 with a message under the field."""

import pytest

from cluster.models import Cluster
from tests.cluster.rule_cases import CASES
from tests.factories import ClusterFactory, DeploymentFactory, FailoverServerFactory, ServerFactory


def _payload(parts: dict) -> dict:
    return {
        "name": "new-cluster",
        "application": parts.get("application", "dmm"),
        "primary": parts["primary"].pk,
        "secondary": parts["secondary"].pk,
        "deployment": parts["deployment"].pk if parts.get("deployment") else None,
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_it_refuses_a_cluster_that_breaks_the_rule(admin_api, case):
    response = admin_api.post("/api/v1/clusters/", _payload(case.build()), format="json")

    assert response.status_code == 400, response.content
    assert case.field in response.json()
    assert any(case.words in message for message in response.json()[case.field])
    assert not Cluster.objects.filter(name="new-cluster").exists()


def test_it_creates_a_valid_cluster(admin_api):
    parts = {"primary": ServerFactory(), "secondary": FailoverServerFactory()}

    response = admin_api.post("/api/v1/clusters/", _payload(parts), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["epoch"] == 1 and body["state"] == "syncing" and body["lease_s"] == 4.0


def test_it_accepts_a_show_and_share_cluster_once_the_dmm_cluster_is_in(admin_api):
    deployment = DeploymentFactory(kind="show_and_share")
    ClusterFactory(deployment=deployment)
    parts = {
        "application": "sns",
        "deployment": deployment,
        "primary": ServerFactory(application="sns", part_number="SNS-SVR-C200WG-K9"),
        "secondary": FailoverServerFactory(application="sns", part_number="SNS-FA-C200WG-K9"),
    }

    response = admin_api.post("/api/v1/clusters/", _payload(parts), format="json")

    assert response.status_code == 201, response.content


def test_it_refuses_to_remove_the_dmm_cluster_of_a_show_and_share_deployment(admin_api):
    deployment = DeploymentFactory(kind="show_and_share")
    dmm = ClusterFactory(deployment=deployment)
    ClusterFactory(
        deployment=deployment,
        application="sns",
        primary=ServerFactory(application="sns", part_number="SNS-SVR-C210EN-K9"),
        secondary=FailoverServerFactory(application="sns", part_number="SNS-FA-C210EN-K9"),
    )

    deleted = admin_api.delete(f"/api/v1/clusters/{dmm.pk}/")
    moved = admin_api.patch(f"/api/v1/clusters/{dmm.pk}/", {"deployment": None}, format="json")

    assert deleted.status_code == 400 and "needs a DMM cluster" in deleted.json()["deployment"][0]
    assert moved.status_code == 400 and "needs a DMM cluster" in moved.json()["deployment"][0]
    assert Cluster.objects.filter(pk=dmm.pk, deployment=deployment).exists()


def test_it_refuses_a_server_edit_that_would_break_its_cluster(admin_api):
    cluster = ClusterFactory()

    response = admin_api.patch(
        f"/api/v1/servers/{cluster.secondary.pk}/", {"part_number": "DMM-SVR-C210-K9"}, format="json"
    )

    assert response.status_code == 400
    assert "breaks cluster" in str(response.json())


@pytest.mark.parametrize(
    "application, part, words",
    [
        ("dmm", "FOO-123", "Part number FOO-123 is not in the part catalog"),
        ("dmm", "SNS-SVR-C210EN-K9", "is a Show and Share part: a Digital Media Manager appliance needs"),
        ("sns", "DMM-FA-C210-K9", "is a Digital Media Manager part: a Show and Share appliance needs"),
    ],
)
def test_it_refuses_a_server_whose_part_is_not_in_the_catalog_for_its_application(admin_api, application, part, words):
    payload = {
        "name": "new-server",
        "application": application,
        "part_number": part,
        "platform": "ucs",
        "hardware": ServerFactory.build().hardware,
        "heartbeat_url": "http://10.0.0.1:8700",
        "intranet_url": "http://10.1.0.1:8700",
    }

    response = admin_api.post("/api/v1/servers/", payload, format="json")

    assert response.status_code == 400
    assert any(words in message for message in response.json()["part_number"])


@pytest.mark.parametrize(
    "hardware, words",
    [
        ("not an object", "must be a JSON object"),
        ({"cpu_model": "x"}, "Missing field(s): cpu_count"),
        ({**ServerFactory.build().hardware, "gpu": 1}, "Unknown field(s): gpu"),
        ({**ServerFactory.build().hardware, "cpu_count": "two"}, "cpu_count must be an integer"),
        (
            {**ServerFactory.build().hardware, "disks": [{"size_gb": -1, "kind": "sas"}]},
            "size_gb must be a positive number",
        ),
    ],
)
def test_it_refuses_hardware_outside_the_schema(admin_api, hardware, words):
    payload = {
        "name": "new-server",
        "application": "dmm",
        "part_number": "DMM-SVR-C210-K9",
        "platform": "ucs",
        "hardware": hardware,
        "heartbeat_url": "http://10.0.0.1:8700",
        "intranet_url": "http://10.1.0.1:8700",
    }

    response = admin_api.post("/api/v1/servers/", payload, format="json")

    assert response.status_code == 400
    assert any(words in message for message in response.json()["hardware"])


def test_it_refuses_a_lease_not_longer_than_the_interval(admin_api):
    cluster = ClusterFactory()

    response = admin_api.patch(f"/api/v1/clusters/{cluster.pk}/", {"lease_s": 1.0, "heartbeat_interval": 2.0})

    assert response.status_code == 400 and "lease_s" in response.json()
