"""The audit log's page and GET /api/v1/audit/: operators and admins only, newest first, the same
filters (user, object type, action, dates), keyset pages; in the OpenAPI schema; read-only."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry

URL = "/api/v1/audit/"


def entry(**fields) -> AuditEntry:
    values = dict(username="oscar-operator", source="api", action="switchover", object_type="cluster", object_id=1)
    return AuditEntry.objects.create(**{**values, **fields})


def pages_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_api_lists_newest_first_and_filters(operator_api):
    old = entry(object_name="old", action="maintenance_on")
    AuditEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    entry(object_name="rule", object_type="notificationrule", action="changed", username="alice-admin")
    newest = entry(object_name="signs", changes={"maintenance": [False, True]})

    rows = operator_api.get(URL).json()["results"]
    assert [r["object_name"] for r in rows] == ["signs", "rule", "old"]
    assert rows[0]["changes"] == {"maintenance": [False, True]} and rows[0]["id"] == newest.pk

    def names(**query):
        return [r["object_name"] for r in operator_api.get(URL, query).json()["results"]]

    assert names(user="alice-admin") == ["rule"]
    assert names(object_type="cluster") == ["signs", "old"]
    assert names(action="maintenance_on") == ["old"]
    assert names(since=(timezone.now() - timedelta(days=1)).isoformat()) == ["signs", "rule"]
    assert names(until=(timezone.now() - timedelta(days=1)).isoformat()) == ["old"]


def test_the_api_pages_by_keyset(operator_api):
    for n in range(5):
        entry(object_name=f"c{n}")

    first = operator_api.get(URL, {"page_size": 2}).json()
    second = operator_api.get(first["next"]).json()

    assert [r["object_name"] for r in first["results"]] == ["c4", "c3"]
    assert [r["object_name"] for r in second["results"]] == ["c2", "c1"]


def test_the_api_refuses_bad_filters_viewers_anonymous_and_writes(operator_api, viewer_api, anonymous_api):
    assert operator_api.get(URL, {"action": "exploded"}).status_code == 400
    assert operator_api.get(URL, {"since": "yesterday"}).status_code == 400
    assert viewer_api.get(URL).status_code == 403
    assert anonymous_api.get(URL).status_code == 401
    assert operator_api.post(URL, {"action": "created"}).status_code == 405
    row = entry()
    assert operator_api.delete(f"{URL}{row.pk}/").status_code == 405


def test_the_schema_documents_the_audit_log(admin_api):
    schema = admin_api.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/audit/"]["get"]
    parameters = {p["name"] for p in operation["parameters"]}
    assert {"user", "action", "object_type", "since", "until", "cursor", "page_size"} <= parameters
    assert "post" not in schema["paths"]["/api/v1/audit/"]


def test_the_page_shows_entries_with_before_and_after_and_filters(operator_user):
    entry(object_name="signs", action="maintenance_on", changes={"maintenance": [False, True]})
    entry(object_name="dmm-a", object_type="server", action="changed", changes={"agent_token": "changed"})

    page = pages_for(operator_user).get("/audit/").content.decode()
    assert page.index("dmm-a") < page.index("signs")  # newest first
    assert "False → True" in page and "changed (secret)" in page
    assert 'href="/audit/"' in page  # in the navigation

    filtered = pages_for(operator_user).get("/audit/", {"object_type": "server", "user": "oscar-operator"})
    assert "dmm-a" in filtered.content.decode() and "signs" not in filtered.content.decode()
    assert pages_for(operator_user).get("/audit/", {"since": "not a date"}).status_code == 400


def test_the_page_pages_older_entries(operator_user):
    rows = [entry(object_name=f"cluster-{n:03d}") for n in range(55)]

    first = pages_for(operator_user).get("/audit/")
    assert "cluster-054" in first.content.decode() and "cluster-004" not in first.content.decode()
    older = pages_for(operator_user).get("/audit/", {"before": first.context["next_before"]})
    assert "cluster-004" in older.content.decode() and "cluster-054" not in older.content.decode()
    assert first.context["next_before"] == rows[5].pk


@pytest.mark.parametrize("role", ["viewer", "outsider"])
def test_the_page_is_for_operators_and_admins(role, viewer_user, outsider_user):
    user = {"viewer": viewer_user, "outsider": outsider_user}[role]

    assert pages_for(user).get("/audit/").status_code == 403
    assert 'href="/audit/"' not in pages_for(user).get("/").content.decode()
    assert Client().get("/audit/")["Location"].startswith("/login/")
