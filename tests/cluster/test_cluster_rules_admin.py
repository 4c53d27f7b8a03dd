"""The same refusal rules through the Django admin's cluster form: same field, same words."""

import json

import pytest
from django.test import Client

from cluster.models import Cluster
from tests.cluster.rule_cases import CASES
from tests.factories import FailoverServerFactory, ServerFactory


@pytest.fixture
def admin_browser(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    return client


def _form(parts: dict) -> dict:
    return {
        "name": "new-cluster",
        "application": parts.get("application", "dmm"),
        "primary": parts["primary"].pk,
        "secondary": parts["secondary"].pk,
        "deployment": parts["deployment"].pk if parts.get("deployment") else "",
        "heartbeat_interval": 2.0,
        "missed_heartbeats_threshold": 3,
        "recovery_threshold": 2,
        "max_grant_delay": 0.25,
        "max_clock_skew": 0.1,
        "replication_interval": 60,
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_it_refuses_the_cluster_in_the_admin_form(admin_browser, case):
    response = admin_browser.post("/admin/cluster/cluster/add/", _form(case.build()))

    assert response.status_code == 200  # the form comes back with its errors
    form = response.context["adminform"].form
    assert any(case.words in message for message in form.errors[case.field])
    assert not Cluster.objects.filter(name="new-cluster").exists()


def test_it_saves_a_valid_cluster_in_the_admin_form(admin_browser):
    response = admin_browser.post(
        "/admin/cluster/cluster/add/", _form({"primary": ServerFactory(), "secondary": FailoverServerFactory()})
    )

    assert response.status_code == 302
    assert Cluster.objects.filter(name="new-cluster").exists()


def test_the_cluster_page_shows_both_servers_with_roles_and_states(admin_browser):
    cluster = Cluster.objects.create(
        name="shown",
        application="dmm",
        primary=ServerFactory(name="dmm-a"),
        secondary=FailoverServerFactory(name="dmm-b"),
    )

    page = admin_browser.get(f"/admin/cluster/cluster/{cluster.pk}/change/").content.decode()

    assert "dmm-a — role <b>Unconfigured</b>, <b>Unknown</b>" in page
    assert "dmm-b — role <b>Unconfigured</b>" in page


def test_the_admin_never_shows_an_agent_token(admin_browser):
    server = ServerFactory(agent_token="s3cret-agent-token")

    page = admin_browser.get(f"/admin/cluster/server/{server.pk}/change/").content.decode()

    assert "s3cret-agent-token" not in page


def test_the_admin_edits_a_servers_web_url_and_refuses_other_schemes(admin_browser):
    server = ServerFactory(agent_token="kept-token")
    url = f"/admin/cluster/server/{server.pk}/change/"
    form = {
        "name": server.name,
        "application": server.application,
        "part_number": server.part_number,
        "platform": server.platform,
        "hardware": json.dumps(server.hardware),
        "heartbeat_url": server.heartbeat_url,
        "intranet_url": server.intranet_url,
        "agent_token": "",
    }

    assert 'name="web_url"' in admin_browser.get(url).content.decode()
    refused = admin_browser.post(url, {**form, "web_url": "ftp://dmm-a.example.com/"})
    saved = admin_browser.post(url, {**form, "web_url": "https://dmm-a.example.com/"})

    assert refused.status_code == 200 and "Use an http:// or https:// address." in refused.content.decode()
    assert saved.status_code == 302
    server.refresh_from_db()
    assert server.web_url == "https://dmm-a.example.com/" and server.agent_token == "kept-token"
