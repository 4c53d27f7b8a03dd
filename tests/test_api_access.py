"""Closed by default (DESIGN §4.7): who may read, write, acknowledge; tokens from the command."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from cluster.models import ApiToken
from tests.factories import ClusterFactory, EventFactory, LicenseFactory, ServerFactory, SoftwareModuleFactory

LISTS = [
    "/api/v1/servers/",
    "/api/v1/clusters/",
    "/api/v1/deployments/",
    "/api/v1/licenses/",
    "/api/v1/modules/",
    "/api/v1/part-numbers/",
    "/api/v1/events/",
    "/api/schema/",
    "/api/docs/",
]


@pytest.fixture
def objects(db):
    cluster = ClusterFactory()
    return {
        "servers": cluster.primary,
        "clusters": cluster,
        "licenses": LicenseFactory(server=cluster.primary),
        "modules": SoftwareModuleFactory(server=cluster.primary),
        "events": EventFactory(cluster=cluster, server=cluster.primary),
    }


def _details(objects):
    return [f"/api/v1/{kind}/{obj.pk}/" for kind, obj in objects.items()]


@pytest.mark.parametrize("url", LISTS)
def test_it_refuses_anonymous_reads(anonymous_api, url):
    assert anonymous_api.get(url).status_code in (401, 403)


def test_it_refuses_anonymous_and_outsiders_on_every_detail(anonymous_api, outsider_api, objects):
    for url in _details(objects):
        assert anonymous_api.get(url).status_code in (401, 403), url
        assert outsider_api.get(url).status_code == 403, url


@pytest.mark.parametrize("url", LISTS)
def test_it_refuses_an_authenticated_user_without_a_role(outsider_api, url):
    assert outsider_api.get(url).status_code == 403


def test_health_needs_no_login(anonymous_api):
    response = anonymous_api.get("/api/v1/health/")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_health_answers_503_when_the_broker_is_down(anonymous_api, settings):
    from dms_admin.redis import redis_client

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    redis_client.cache_clear()
    try:
        response = anonymous_api.get("/api/v1/health/")
    finally:
        redis_client.cache_clear()

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "down"


def test_a_viewer_reads_everything_and_writes_nothing(viewer_api, objects):
    for url in LISTS + _details(objects):
        assert viewer_api.get(url).status_code == 200, url
    for url in _details(objects):
        assert viewer_api.patch(url, {"name": "x"}, format="json").status_code == 403, url
        assert viewer_api.delete(url).status_code == 403, url
    for url in LISTS[:6]:
        assert viewer_api.post(url, {}, format="json").status_code == 403, url
    event = objects["events"]
    assert viewer_api.post(f"/api/v1/events/{event.pk}/acknowledge/").status_code == 403


def test_an_operator_acknowledges_but_does_not_configure(operator_api, operator_user, objects):
    event = objects["events"]

    acknowledged = operator_api.post(f"/api/v1/events/{event.pk}/acknowledge/")
    changed = operator_api.patch(f"/api/v1/clusters/{objects['clusters'].pk}/", {"maintenance": True}, format="json")

    assert acknowledged.status_code == 200
    assert acknowledged.json()["acknowledged_by"] == operator_user.username
    assert acknowledged.json()["acknowledged_at"] is not None
    assert changed.status_code == 403


def test_an_admin_changes_configuration(admin_api, objects):
    response = admin_api.patch(f"/api/v1/clusters/{objects['clusters'].pk}/", {"maintenance": True}, format="json")

    assert response.status_code == 200 and response.json()["maintenance"] is True


def test_a_token_from_the_command_authenticates(viewer_user):
    out = StringIO()
    call_command("create_api_token", viewer_user.username, stdout=out)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")

    assert client.get("/api/v1/clusters/").status_code == 200
    assert APIClient(HTTP_AUTHORIZATION="Token not-a-token").get("/api/v1/clusters/").status_code == 401


def test_the_database_holds_no_usable_api_token(viewer_user):
    out = StringIO()
    call_command("create_api_token", viewer_user.username, stdout=out)
    key = out.getvalue().strip()
    stored = ApiToken.objects.values().get(user=viewer_user)

    assert not [value for value in stored.values() if isinstance(value, str) and key in value]
    for column in ("digest", "prefix"):
        client = APIClient(HTTP_AUTHORIZATION=f"Token {stored[column]}")
        assert client.get("/api/v1/clusters/").status_code == 401


def test_a_token_is_shown_once_and_rotating_it_retires_the_old_one(viewer_user):
    first, second = StringIO(), StringIO()
    call_command("create_api_token", viewer_user.username, stdout=first)

    with pytest.raises(CommandError, match="cannot be shown again; --rotate replaces it"):
        call_command("create_api_token", viewer_user.username)
    call_command("create_api_token", viewer_user.username, "--rotate", stdout=second)

    old = APIClient(HTTP_AUTHORIZATION=f"Token {first.getvalue().strip()}")
    new = APIClient(HTTP_AUTHORIZATION=f"Token {second.getvalue().strip()}")
    assert old.get("/api/v1/clusters/").status_code == 401
    assert new.get("/api/v1/clusters/").status_code == 200


def test_an_administrator_revokes_a_token_in_the_admin(viewer_user, admin_user):
    out = StringIO()
    call_command("create_api_token", viewer_user.username, stdout=out)
    admin_user.is_superuser = True
    admin_user.save()
    web = Client()
    web.force_login(admin_user)
    token = ApiToken.objects.get(user=viewer_user)

    listed = web.get("/admin/cluster/apitoken/").content.decode()
    web.post(f"/admin/cluster/apitoken/{token.pk}/delete/", {"post": "yes"})

    assert token.prefix in listed and out.getvalue().strip() not in listed
    client = APIClient(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
    assert client.get("/api/v1/clusters/").status_code == 401


def test_the_agent_token_is_write_only(admin_api):
    server = ServerFactory(agent_token="very-secret-agent-token")

    listed = admin_api.get("/api/v1/servers/").content.decode()
    shown = admin_api.get(f"/api/v1/servers/{server.pk}/").content.decode()

    assert "very-secret-agent-token" not in listed + shown
