"""The API's error contract (issue 12): every refusal a client can meet is a status its operation
documents in the OpenAPI schema, with a JSON body of the documented shape; filters and bodies take
exactly the types the schema gives them."""

import base64
import re

import jsonschema
import pytest
from rest_framework.test import APIClient

from cluster.hardware import EXAMPLE, JSON_SCHEMA, hardware_errors
from tests.factories import ClusterFactory, DeploymentFactory, EventFactory, ServerFactory


@pytest.fixture
def schema(admin_api):
    return admin_api.get("/api/schema/?format=json").json()


def documented(schema: dict, method: str, path: str) -> dict:
    """The operation of `schema` that serves `path` (a concrete URL) with `method`."""
    for template, operations in schema["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in operations:
            return operations[method.lower()]
    raise AssertionError(f"{method} {path} is in no path of the schema")


def assert_documented(schema: dict, method: str, path: str, response) -> None:
    """The answer's status is one the operation lists, and its body has the listed shape."""
    responses = documented(schema, method, path)["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method} {path}: {status} undocumented (documents {sorted(responses)})"
    answer = responses[status]
    if "$ref" in answer:
        answer = schema["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    body_schema = {**answer["content"]["application/json"]["schema"], "components": schema["components"]}
    jsonschema.validate(response.json(), body_schema)


def test_each_refusal_is_a_documented_status_with_a_documented_body(
    schema, admin_api, viewer_api, outsider_api, anonymous_api
):
    cluster = ClusterFactory(deployment=DeploymentFactory())
    server = cluster.primary
    bogus_cursor = base64.b64encode(b"p=abc").decode()
    refusals = [
        (anonymous_api, "get", "/api/v1/clusters/", {}, 401),
        (APIClient(HTTP_AUTHORIZATION="Token not-a-token"), "get", f"/api/v1/servers/{server.pk}/", {}, 401),
        (outsider_api, "get", "/api/v1/events/", {}, 403),
        (viewer_api, "delete", f"/api/v1/servers/{server.pk}/", {}, 403),
        (admin_api, "get", "/api/v1/clusters/999999/", {}, 404),
        (admin_api, "get", "/api/v1/clusters/1.5/", {}, 404),
        (admin_api, "post", "/api/v1/clusters/999999/replicate/", {}, 404),
        (admin_api, "get", f"/api/v1/events/?cursor={bogus_cursor}", {}, 404),
        (admin_api, "delete", f"/api/v1/servers/{server.pk}/", {}, 409),
        (admin_api, "delete", f"/api/v1/deployments/{cluster.deployment_id}/", {}, 409),
        (admin_api, "get", "/api/v1/servers/?limit=abc", {}, 400),
        (admin_api, "get", "/api/v1/clusters/?maintenance=maybe", {}, 400),
        (admin_api, "post", f"/api/v1/clusters/{cluster.pk}/maintenance/", {"data": {"maintenance": 1}}, 400),
        (admin_api, "post", "/api/v1/deployments/", {"data": "{", "content_type": "application/json"}, 400),
        (admin_api, "post", "/api/v1/deployments/", {"data": {"name": "x"}, "format": "multipart"}, 415),
        (admin_api, "post", "/api/v1/deployments/", {"data": {"name": "x" * 3_000_000}}, 413),
        (admin_api, "get", "/api/v1/clusters/", {"HTTP_ACCEPT": "text/plain"}, 406),
    ]
    for client, method, path, extra, status in refusals:
        response = getattr(client, method)(path, **extra)

        assert response.status_code == status, (method, path, response.status_code, response.content[:300])
        assert response["Content-Type"] == "application/json", (method, path)
        assert_documented(schema, method, path.split("?")[0], response)


def test_the_schema_derives_each_operations_errors(schema):
    def statuses(method, path):
        return set(schema["paths"][path][method]["responses"])

    assert {"400", "401", "403", "406"} <= statuses("get", "/api/v1/servers/")
    assert "404" not in statuses("get", "/api/v1/servers/")  # no id, no cursor
    assert "404" in statuses("get", "/api/v1/events/")  # a cursor it did not give out
    assert {"401", "403", "404", "406"} == statuses("get", "/api/v1/servers/{id}/") - {"200"}
    assert {"400", "413", "415"} <= statuses("patch", "/api/v1/clusters/{id}/")
    assert "409" in statuses("delete", "/api/v1/servers/{id}/")  # clusters protect their servers
    assert "409" not in statuses("delete", "/api/v1/licenses/{id}/")
    assert "400" in statuses("delete", "/api/v1/clusters/{id}/")  # Cluster.delete checks a rule
    assert "400" not in statuses("post", "/api/v1/clusters/{id}/replicate/")  # no body, no parameters
    assert statuses("get", "/api/v1/health/") == {"200", "406", "503"}  # no login


def test_ids_and_filters_carry_the_bounds_the_server_checks(schema):
    def parameters(path):
        return {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}

    bigint = {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}
    assert parameters("/api/v1/clusters/{id}/")["id"] == bigint
    assert parameters("/api/v1/events/")["cluster"] == bigint  # was `number`: 2.5 was taken
    assert parameters("/api/v1/clusters/")["deployment"] == bigint
    assert parameters("/api/v1/licenses/")["server"] == bigint
    assert parameters("/api/v1/audit/")["object_type"]["maxLength"] == 50
    request = schema["components"]["schemas"]["ClusterRequest"]["properties"]
    assert request["primary"] == bigint
    assert schema["components"]["schemas"]["NotificationRuleRequest"]["properties"]["event_types"]["minItems"] == 1


@pytest.mark.parametrize(
    ("query", "parameter", "message"),
    [
        ("application=", "application", "Give a value"),
        ("state=&name=x", "state", "Give a value"),
        ("maintenance=maybe", "maintenance", "true or false"),
        ("active=1", "active", "true or false"),
        ("deployment=2.5", "deployment", "whole number"),
        ("deployment=%205", "deployment", "whole number"),
        ("deployment=0", "deployment", "greater than or equal to 1"),
    ],
)
def test_a_filter_value_of_the_wrong_type_is_refused_naming_the_filter(viewer_api, query, parameter, message):
    response = viewer_api.get(f"/api/v1/clusters/?{query}")

    assert response.status_code == 400
    assert message in " ".join(response.json()[parameter]), response.json()


def test_filters_on_related_objects_take_any_id(viewer_api):
    cluster = ClusterFactory(deployment=DeploymentFactory())
    EventFactory(cluster=cluster)

    assert viewer_api.get("/api/v1/clusters/?deployment=999999").json()["count"] == 0  # was a 400
    assert viewer_api.get(f"/api/v1/clusters/?deployment={cluster.deployment_id}").json()["count"] == 1
    assert viewer_api.get(f"/api/v1/licenses/?server={cluster.primary_id}").status_code == 200
    assert len(viewer_api.get(f"/api/v1/events/?cluster={cluster.pk}&acknowledged=false").json()["results"]) == 1
    assert viewer_api.get("/api/v1/clusters/?name=").json()["count"] == 1  # empty text: matches all


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/part-numbers/", {"primary_part": 0}, "primary_part"),
        ("/api/v1/deployments/", {"name": "a", "kind": "digital_signs", "description": 5}, "description"),
        ("/api/v1/notification-rules/", {"name": "r", "channel": "email", "clusters": ["1"]}, "clusters"),
        ("/api/v1/notification-rules/", {"name": "r", "channel": "email", "enabled": "true"}, "enabled"),
        ("/api/v1/notification-rules/", {"name": "r", "channel": "snmp", "port": "162"}, "port"),
    ],
)
def test_a_json_value_of_the_wrong_type_is_refused_naming_the_field(admin_api, path, body, field):
    response = admin_api.post(path, body)

    assert response.status_code == 400
    assert "must be" in " ".join(response.json()[field]).lower(), response.json()


def test_json_null_and_numbers_for_floats_are_taken_where_the_schema_allows(admin_api):
    cluster = ClusterFactory()

    response = admin_api.patch(f"/api/v1/clusters/{cluster.pk}/", {"lease_s": None, "heartbeat_interval": 2})

    assert response.status_code == 200, response.json()


def test_a_cursor_with_a_crafted_position_is_a_404_not_a_500(viewer_api):
    EventFactory()
    for token in (b"p=abc", b"p=1e3", b"o=1&p=%20"):
        response = viewer_api.get("/api/v1/events/", {"cursor": base64.b64encode(token).decode()})

        assert response.status_code == 404, (token, response.status_code)


@pytest.mark.parametrize(
    "hardware",
    [
        EXAMPLE,
        {**EXAMPLE, "cpu_count": 1024, "nic_count": 64, "memory_gb": 0.5, "raid_level": "R" * 40},
        {**EXAMPLE, "disks": [{"size_gb": 0.1, "kind": "k" * 40}] * 256},
        {**EXAMPLE, "cpu_count": 0},
        {**EXAMPLE, "cpu_count": True},
        {**EXAMPLE, "nic_count": 65},
        {**EXAMPLE, "memory_gb": 0},
        {**EXAMPLE, "memory_gb": 1_048_577},
        {**EXAMPLE, "cpu_model": ""},
        {**EXAMPLE, "cpu_model": "x" * 201},
        {**EXAMPLE, "disks": []},
        {**EXAMPLE, "disks": [{"size_gb": 300}]},
        {**EXAMPLE, "disks": [{"size_gb": 300, "kind": "sas", "rpm": 10_000}]},
        {**EXAMPLE, "disks": [{"size_gb": "300", "kind": "sas"}]},
        {**EXAMPLE, "extra": 1},
        {k: v for k, v in EXAMPLE.items() if k != "raid_level"},
        None,
    ],
)
def test_the_hardware_schema_says_what_the_check_accepts(hardware):
    assert jsonschema.Draft4Validator(JSON_SCHEMA).is_valid(hardware) == (hardware_errors(hardware) == [])


def test_a_server_with_schema_valid_hardware_is_stored(admin_api):
    server = ServerFactory()
    hardware = {**EXAMPLE, "disks": [{"size_gb": 0.5, "kind": "ssd"}], "cpu_count": 1024}

    response = admin_api.patch(f"/api/v1/servers/{server.pk}/", {"hardware": hardware})

    assert response.status_code == 200, response.json()
