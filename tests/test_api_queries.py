"""List endpoints cost a fixed number of queries, whatever the number of rows (no N+1)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cluster.models import Deployment
from tests.factories import (
    ClusterFactory,
    DeploymentFactory,
    EventFactory,
    LicenseFactory,
    SoftwareModuleFactory,
)


def _make_rows(count: int) -> None:
    for _ in range(count):
        cluster = ClusterFactory(deployment=DeploymentFactory())
        EventFactory(cluster=cluster, server=cluster.primary)
        LicenseFactory(server=cluster.primary)
        SoftwareModuleFactory(server=cluster.primary)


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200
    return len(context.captured_queries)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/servers/",
        "/api/v1/clusters/",
        "/api/v1/deployments/",
        "/api/v1/licenses/",
        "/api/v1/modules/",
        "/api/v1/events/",
    ],
)
def test_a_list_costs_the_same_queries_for_1_and_50_rows(viewer_api, url):
    _make_rows(1)
    viewer_api.get(url)  # the first request also looks up the user's role
    few = _queries(viewer_api, url)
    _make_rows(49)
    assert Deployment.objects.count() == 50

    many = _queries(viewer_api, url)

    assert many == few
