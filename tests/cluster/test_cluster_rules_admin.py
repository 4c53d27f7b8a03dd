"""The same refusal rules through the Django admin's cluster form: same field, same words."""

import pytest
from django.test import Client

from cluster.models import Cluster, Server
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
    form = _server_form(server)

    assert 'name="web_url"' in admin_browser.get(url).content.decode()
    refused = admin_browser.post(url, {**form, "web_url": "ftp://dmm-a.example.com/"})
    saved = admin_browser.post(url, {**form, "web_url": "https://dmm-a.example.com/"})

    assert refused.status_code == 200 and "Use an http:// or https:// address." in refused.content.decode()
    assert saved.status_code == 302
    server.refresh_from_db()
    assert server.web_url == "https://dmm-a.example.com/" and server.agent_token == "kept-token"


def _server_form(server=None, **changes) -> dict:
    """The admin's server form as a person fills it in: hardware field by field."""
    server = server or ServerFactory.build(name="new-server")
    hardware = server.hardware
    form = {
        "name": server.name,
        "application": server.application,
        "part_number": server.part_number,
        "platform": server.platform,
        "cpu_model": hardware["cpu_model"],
        "cpu_count": hardware["cpu_count"],
        "memory_gb": hardware["memory_gb"],
        "disks": "\n".join(f"{disk['size_gb']} {disk['kind']}" for disk in hardware["disks"]),
        "raid_level": hardware["raid_level"],
        "nic_count": hardware["nic_count"],
        "heartbeat_url": server.heartbeat_url,
        "intranet_url": server.intranet_url,
        "web_url": "",
        "agent_token": "",
    }
    return {**form, **changes}


def test_the_server_form_offers_the_catalogs_parts_and_hardware_fields(admin_browser):
    page = admin_browser.get("/admin/cluster/server/add/").content.decode()

    for part in ("DMM-SVR-C210-K9", "DMM-FA-C210-K9", "SNS-SVR-C210EN-K9", "SNS-FA-C200WG-K9"):
        assert f'<option value="{part}">' in page
    for field in ("cpu_model", "cpu_count", "memory_gb", "disks", "raid_level", "nic_count"):
        assert f'name="{field}"' in page
    assert 'name="hardware"' not in page and "null" not in page


def test_the_server_form_saves_the_hardware_entered_as_fields(admin_browser):
    response = admin_browser.post(
        "/admin/cluster/server/add/", _server_form(memory_gb="24", disks="600 sas\n600 sas\n480 ssd")
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    saved = Server.objects.get(name="new-server")
    assert saved.hardware == {
        "cpu_model": "Intel Xeon E5620",
        "cpu_count": 2,
        "memory_gb": 24,
        "disks": [{"size_gb": 600, "kind": "sas"}, {"size_gb": 600, "kind": "sas"}, {"size_gb": 480, "kind": "ssd"}],
        "raid_level": "RAID1",
        "nic_count": 2,
    }


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"part_number": "FOO-123"}, "part_number", "Part number FOO-123 is not in the part catalog"),
        (
            {"part_number": "SNS-SVR-C210EN-K9"},
            "part_number",
            "is a Show and Share part: a Digital Media Manager appliance needs",
        ),
        ({"disks": "three hundred sas"}, "disks", "Disk 1: “three” is not a size in GB"),
        ({"disks": "300"}, "__all__", "disk 1: kind must be a non-empty string"),
        ({"cpu_count": "0"}, "cpu_count", "greater than or equal to 1"),
    ],
)
def test_the_server_form_refuses_parts_and_hardware_outside_the_rules(admin_browser, changes, field, words):
    response = admin_browser.post("/admin/cluster/server/add/", _server_form(**changes))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(words in message for message in errors.get(field, [])), errors
    assert not Server.objects.filter(name="new-server").exists()


def test_the_server_change_form_shows_the_stored_hardware_in_its_fields(admin_browser):
    server = ServerFactory()

    page = admin_browser.get(f"/admin/cluster/server/{server.pk}/change/").content.decode()

    assert 'value="Intel Xeon E5620"' in page and ">\n300 sas\n300 sas</textarea>" in page
    assert '<option value="DMM-SVR-C210-K9" selected>' in page
