"""Bad input gets a 4xx with a reason, never a 500 (malformed JSON, wrong types, unknown ids and
filters, 100 kB strings)."""

import pytest
from django.db import DataError, connection, transaction

from dms_admin.api import exception_handler
from tests.factories import ClusterFactory, EventFactory, ServerFactory

WRITABLE = [
    "/api/v1/servers/",
    "/api/v1/clusters/",
    "/api/v1/deployments/",
    "/api/v1/licenses/",
    "/api/v1/modules/",
    "/api/v1/part-numbers/",
]
ALL = WRITABLE + ["/api/v1/events/"]
HUGE = "x" * 100_000


@pytest.mark.parametrize("url", WRITABLE)
def test_it_answers_400_to_malformed_json(admin_api, url):
    response = admin_api.generic("POST", url, '{"name": "broken', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize("url", WRITABLE)
@pytest.mark.parametrize("body", [[], "a string", 42, {"name": HUGE, "hardware": HUGE, "server": HUGE}])
def test_it_answers_400_to_wrong_types_and_huge_strings(admin_api, url, body):
    response = admin_api.post(url, body, format="json")

    assert response.status_code == 400


def test_it_answers_400_to_wrong_field_types_on_a_cluster(admin_api):
    cluster = ClusterFactory()
    for field, value in [
        ("heartbeat_interval", "fast"),
        ("missed_heartbeats_threshold", -1),
        ("maintenance", {"a": 1}),
        ("primary", 10**20),
        ("deployment", "none"),
        ("max_clock_skew", 1e308),
        ("name", HUGE),
    ]:
        response = admin_api.patch(f"/api/v1/clusters/{cluster.pk}/", {field: value}, format="json")
        assert response.status_code == 400, (field, response.status_code)


def test_a_servers_web_url_round_trips_and_can_be_cleared(admin_api):
    server = ServerFactory()
    url = f"/api/v1/servers/{server.pk}/"

    assert admin_api.get(url).json()["web_url"] == ""
    set_ = admin_api.patch(url, {"web_url": "https://dmm-a.example.com/"}, format="json")
    plain = admin_api.patch(url, {"web_url": "http://dmm-a.intranet.example/app/"}, format="json")
    shown = admin_api.get(url).json()
    cleared = admin_api.patch(url, {"web_url": ""}, format="json")

    assert set_.status_code == 200 and set_.json()["web_url"] == "https://dmm-a.example.com/"
    assert plain.status_code == 200 and shown["web_url"] == "http://dmm-a.intranet.example/app/"
    assert cleared.status_code == 200 and cleared.json()["web_url"] == ""


@pytest.mark.parametrize(
    "value, message",
    [
        ("ftp://dmm-a.example.com/", "http:// or https://"),
        ("javascript:alert(1)", "valid URL"),
        ("https://user:secret@dmm-a.example.com/", "user names and passwords"),
        ("https://dmm-a.example.com/\r\nSet-Cookie: x=1", "valid URL"),
        ("dmm-a.example.com", "valid URL"),
        (HUGE, "300 characters"),
    ],
)
def test_a_bad_web_url_is_a_400_naming_the_field(admin_api, value, message):
    server = ServerFactory(web_url="https://dmm-a.example.com/")

    response = admin_api.patch(f"/api/v1/servers/{server.pk}/", {"web_url": value}, format="json")

    assert response.status_code == 400
    assert any(message in m for m in response.json()["web_url"]), response.json()
    server.refresh_from_db()
    assert server.web_url == "https://dmm-a.example.com/"


@pytest.mark.parametrize("url", ALL)
@pytest.mark.parametrize("ident", ["999999", "abc", str(10**30), "-1"])
def test_it_answers_404_to_unknown_ids(admin_api, url, ident):
    assert admin_api.get(f"{url}{ident}/").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "colour=blue",
        "cluster=abc",
        "cluster=" + str(10**30),
        "type=not_a_type",
        "since=yesterday",
        "acknowledged=maybe",
        "severity=" + "x" * 100_000,
        "cursor=garbage",
        "page_size=-5",
        "q=" + HUGE,
    ],
)
def test_event_filters_never_answer_500(viewer_api, query):
    EventFactory()

    response = viewer_api.get(f"/api/v1/events/?{query}")

    assert response.status_code in (200, 400, 404), response.status_code


@pytest.mark.parametrize("url", WRITABLE)
def test_other_list_filters_never_answer_500(viewer_api, url):
    for query in ["unknown=1", "server=abc", "deployment=" + str(10**30), "name=" + HUGE, "limit=abc", "offset=-1"]:
        response = viewer_api.get(f"{url}?{query}")
        assert response.status_code in (200, 400), (url, query, response.status_code)


def test_a_time_zone_offset_past_what_postgresql_takes_is_the_same_instant_in_utc(viewer_api):
    """RFC 3339 (the schema's date-time) allows offsets to ±23:59, PostgreSQL only to ±15:59: this
    was a 400 for a valid time. Near year 1 or 9999 the instant is the first or last there is."""
    EventFactory()

    def found(**query):
        return len(viewer_api.get("/api/v1/events/", query).json()["results"])

    assert found(since="2000-01-01T00:00:00+16:00") == 1
    assert found(since="2000-01-01T00:00:00.5-23:59") == 1
    assert found(until="0001-01-01T00:00:00+18:03") == 0
    assert found(until="9999-12-31T23:00:00-18:00") == 1


def test_a_value_the_database_refuses_is_a_400_and_leaves_an_enclosing_transaction_usable(db):
    """No input is known to reach the database unchecked any more; if one does, a savepoint
    around the request (as ATOMIC_REQUESTS or a test would put) is rolled back, not left broken."""
    with transaction.atomic():
        refused = exception_handler(DataError("value out of range"), {})
        assert connection.needs_rollback

    assert refused.status_code == 400 and "out of range" in refused.data["detail"]


def test_deleting_what_a_cluster_still_uses_is_a_409_not_a_500(admin_api):
    cluster = ClusterFactory()

    server = admin_api.delete(f"/api/v1/servers/{cluster.primary_id}/")
    deployment = admin_api.delete(f"/api/v1/deployments/{cluster.deployment_id}/") if cluster.deployment_id else None

    assert server.status_code == 409, server.content
    assert cluster.name in server.json()["detail"]
    if deployment is not None:
        assert deployment.status_code in (409, 400), deployment.content
