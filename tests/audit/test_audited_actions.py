"""Every operator and admin action leaves an audit entry naming the user, from wherever it was
taken (pages, admin, API): switchover, maintenance, replication, deletions confirmed,
acknowledgements, notification rules, servers, clusters and deployments. Secrets are never
written down: a changed secret reads "changed"."""

import pytest
from django.contrib.auth.models import Group
from django.forms.models import model_to_dict
from django.test import Client

from alerts.models import Event, NotificationRule
from audit.models import AuditEntry
from cluster.models import Cluster, Deployment, Server
from tests.alerts.factories import SnmpRuleFactory
from tests.factories import ClusterFactory, DeploymentFactory, EventFactory, ServerFactory, UserFactory


def pages_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def queued(monkeypatch):
    """The Celery tasks the actions start, recorded instead of sent."""
    calls = []
    monkeypatch.setattr("cluster.actions.replicate.delay", lambda *a: calls.append(("replicate", a)))
    monkeypatch.setattr(
        "cluster.actions.run_failover.apply_async", lambda args, **kw: calls.append(("run_failover", args))
    )
    return calls


def only_entry(**filters) -> AuditEntry:
    entries = list(AuditEntry.objects.filter(**filters))
    assert len(entries) == 1, [(e.action, e.object_type, e.username) for e in AuditEntry.objects.all()]
    return entries[0]


# -- cluster actions, from the pages and the API


def test_replication_and_confirmed_deletions_name_the_operator(operator_user, operator_api, queued):
    cluster = ClusterFactory()

    pages_for(operator_user).post(f"/clusters/{cluster.pk}/replicate/")
    operator_api.post(f"/api/v1/clusters/{cluster.pk}/confirm-deletions/")

    started = only_entry(action="replication_started")
    assert (started.username, started.user, started.source) == ("oscar-operator", operator_user, "page")
    assert (started.object_type, started.object_id, started.object_name) == ("cluster", cluster.pk, cluster.name)
    confirmed = only_entry(action="deletions_confirmed")
    assert (confirmed.username, confirmed.source) == ("oscar-operator", "api")


def test_a_switchover_records_the_user_and_writes_requested_by_into_the_request(
    operator_user, operator_api, queued, monkeypatch
):
    cluster = ClusterFactory()
    monkeypatch.setattr("cluster.actions.preflight_switchover", lambda cluster: [])

    assert operator_api.post(f"/api/v1/clusters/{cluster.pk}/switchover/").status_code == 202
    assert pages_for(operator_user).post(f"/clusters/{cluster.pk}/switchover/").status_code == 302

    request = Cluster.objects.get(pk=cluster.pk).failover_request
    assert request["cause"] == "switchover" and request["requested_by"] == "oscar-operator"
    started, refused = AuditEntry.objects.filter(action="switchover").order_by("id")
    assert started.details == {
        "from": cluster.primary.name,
        "to": cluster.secondary.name,
        "epoch": 1,
        "outcome": "started",
    }
    assert (started.source, started.username) == ("api", "oscar-operator")
    assert refused.source == "page" and refused.details["outcome"] == "refused"
    assert refused.details["reasons"] == ["A failover or switchover is already in progress."]


def test_a_refused_switchover_is_recorded_with_its_reasons(operator_api, queued):
    cluster = ClusterFactory()  # still syncing: the preflight refuses

    response = operator_api.post(f"/api/v1/clusters/{cluster.pk}/switchover/")

    assert response.status_code == 409
    entry = only_entry(action="switchover")
    assert entry.details["reasons"] == response.json()["reasons"] and entry.username == "oscar-operator"
    assert queued == []


def test_maintenance_from_the_page_the_api_action_and_patch(operator_user, operator_api, admin_api):
    cluster = ClusterFactory()

    pages_for(operator_user).post(f"/clusters/{cluster.pk}/maintenance/", {"maintenance": "on"})
    off = operator_api.post(f"/api/v1/clusters/{cluster.pk}/maintenance/", {"maintenance": False}, format="json")
    admin_api.patch(f"/api/v1/clusters/{cluster.pk}/", {"maintenance": True}, format="json")

    assert off.status_code == 200 and off.json()["maintenance"] is False
    entries = list(AuditEntry.objects.order_by("id").values_list("action", "source", "username", "changes"))
    assert entries == [
        ("maintenance_on", "page", "oscar-operator", {"maintenance": [False, True]}),
        ("maintenance_off", "api", "oscar-operator", {"maintenance": [True, False]}),
        ("maintenance_on", "api", "alice-admin", {"maintenance": [False, True]}),
    ]
    assert Cluster.objects.get(pk=cluster.pk).maintenance is True


def test_setting_maintenance_to_what_it_is_records_nothing(operator_api):
    cluster = ClusterFactory(maintenance=True)

    operator_api.post(f"/api/v1/clusters/{cluster.pk}/maintenance/", {"maintenance": True}, format="json")

    assert not AuditEntry.objects.exists()


def test_a_viewer_can_neither_toggle_maintenance_nor_leave_an_entry(viewer_user, viewer_api):
    cluster = ClusterFactory()

    assert viewer_api.post(f"/api/v1/clusters/{cluster.pk}/maintenance/", {"maintenance": True}).status_code == 403
    assert pages_for(viewer_user).post(f"/clusters/{cluster.pk}/maintenance/", {"maintenance": "on"}).status_code == 403
    assert not AuditEntry.objects.exists() and not Cluster.objects.get(pk=cluster.pk).maintenance


# -- servers, clusters and deployments through the API


def test_api_changes_say_before_and_after_and_never_a_secret(admin_api):
    server = ServerFactory(name="dmm-a")

    response = admin_api.patch(
        f"/api/v1/servers/{server.pk}/",
        {"agent_token": "new-agent-secret", "intranet_url": "http://127.0.0.1:29999"},
        format="json",
    )

    assert response.status_code == 200, response.json()
    entry = only_entry(action="changed")
    assert entry.username == "alice-admin" and entry.object_name == "dmm-a"
    assert entry.changes == {
        "intranet_url": [server.intranet_url, "http://127.0.0.1:29999"],
        "agent_token": "changed",
    }
    everything = str(list(AuditEntry.objects.values()))
    assert "new-agent-secret" not in everything and "agent-secret-token" not in everything


def test_a_related_object_is_named_before_and_after(admin_api):
    cluster = ClusterFactory()
    deployment = DeploymentFactory(name="hq")

    response = admin_api.patch(f"/api/v1/clusters/{cluster.pk}/", {"deployment": deployment.pk}, format="json")

    assert response.status_code == 200, response.json()
    assert only_entry(action="changed").changes == {"deployment": [None, f"hq (#{deployment.pk})"]}


def test_api_creation_and_deletion_are_recorded(admin_api):
    created = admin_api.post("/api/v1/deployments/", {"name": "hq", "kind": "digital_signs"}, format="json")
    deployment_id = created.json()["id"]
    admin_api.delete(f"/api/v1/deployments/{deployment_id}/")

    create, delete = AuditEntry.objects.order_by("id")
    assert (create.action, create.object_id, create.changes["name"]) == ("created", deployment_id, [None, "hq"])
    assert (delete.action, delete.object_id, delete.object_name, delete.username) == (
        "deleted",
        deployment_id,
        "hq",
        "alice-admin",
    )


# -- the admin


def admin_form(obj, **changes) -> dict:
    data = {k: ("" if v is None else v) for k, v in model_to_dict(obj).items()}
    return {k: v for k, v in {**data, **changes}.items() if v is not False}


def test_admin_changes_and_deletions_are_recorded(admin_user):
    client = pages_for(admin_user)
    cluster = ClusterFactory()
    deployment = DeploymentFactory(name="lab")

    response = client.post(f"/admin/cluster/cluster/{cluster.pk}/change/", admin_form(cluster, maintenance="on"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    client.post(f"/admin/cluster/deployment/{deployment.pk}/change/", admin_form(deployment, description="Lab"))
    client.post(f"/admin/cluster/deployment/{deployment.pk}/delete/", {"post": "yes"})

    entries = list(AuditEntry.objects.order_by("id").values_list("action", "source", "username", "changes"))
    assert entries == [
        ("maintenance_on", "admin", "alice-admin", {"maintenance": [False, True]}),
        ("changed", "admin", "alice-admin", {"description": ["", "Lab"]}),
        ("deleted", "admin", "alice-admin", {}),
    ]
    assert not Deployment.objects.filter(pk=deployment.pk).exists()


def test_admin_bulk_deletion_records_each_object(admin_user):
    servers = ServerFactory.create_batch(2)

    pages_for(admin_user).post(
        "/admin/cluster/server/",
        {"action": "delete_selected", "_selected_action": [s.pk for s in servers], "post": "yes"},
    )

    assert not Server.objects.exists()
    assert sorted(AuditEntry.objects.filter(action="deleted").values_list("object_id", flat=True)) == sorted(
        s.pk for s in servers
    )


def test_an_unchanged_admin_save_records_nothing(admin_user):
    deployment = DeploymentFactory()

    pages_for(admin_user).post(f"/admin/cluster/deployment/{deployment.pk}/change/", admin_form(deployment))

    assert not AuditEntry.objects.exists()


# -- alerts: acknowledgements and notification rules


def test_acknowledgements_from_the_page_and_the_api(operator_user, operator_api):
    first, second, third = EventFactory.create_batch(3)

    pages_for(operator_user).post("/alerts/acknowledge/", {"ids": [first.pk, second.pk]})
    operator_api.post(f"/api/v1/events/{third.pk}/acknowledge/")
    operator_api.post(f"/api/v1/events/{third.pk}/acknowledge/")  # already: no second entry

    entries = AuditEntry.objects.filter(action="acknowledged").order_by("object_id")
    assert [(e.object_type, e.object_id, e.source) for e in entries] == [
        ("event", first.pk, "page"),
        ("event", second.pk, "page"),
        ("event", third.pk, "api"),
    ]
    assert {e.username for e in entries} == {"oscar-operator"}
    assert Event.objects.filter(acknowledged_by=operator_user).count() == 3


def test_notification_rules_created_changed_tested_and_deleted(admin_user, admin_api, operator_api):
    created = admin_api.post(
        "/api/v1/notification-rules/",
        {"name": "nms", "channel": "snmp", "host": "127.0.0.1", "port": 16299, "community": "first-community"},
        format="json",
    )
    rule_id = created.json()["id"]
    admin_api.patch(
        f"/api/v1/notification-rules/{rule_id}/", {"community": "second-community", "port": 16298}, format="json"
    )
    tested = operator_api.post(f"/api/v1/notification-rules/{rule_id}/test/")
    pages_for(admin_user).post(f"/alerts/rules/{rule_id}/test/")
    pages_for(admin_user).post(f"/alerts/rules/{rule_id}/delete/")

    assert tested.status_code == 200, tested.json()
    assert not NotificationRule.objects.filter(pk=rule_id).exists()
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.source, e.username) for e in entries] == [
        ("created", "api", "alice-admin"),
        ("changed", "api", "alice-admin"),
        ("tested", "api", "oscar-operator"),
        ("tested", "page", "alice-admin"),
        ("deleted", "page", "alice-admin"),
    ]
    assert entries[0].changes["community"] == "changed"
    assert entries[1].changes == {"port": [16299, 16298], "community": "changed"}
    assert entries[2].details == {"ok": True, "outcome": "sent"}
    assert "community" not in str(entries[2].details)
    assert "first-community" not in str(list(AuditEntry.objects.values()))


def test_a_rule_changed_through_the_page_form(admin_user):
    rule = SnmpRuleFactory(name="nms", port=16200)
    data = {
        "name": "nms-core",  # not the destination: a new host or port needs the secret again
        "enabled": "on",
        "event_types": ["server_failed"],
        "min_severity": "info",
        "host": "127.0.0.1",
        "port": "16200",
        "snmp_version": "v2c",
        "snmp_mode": "trap",
        "auth_protocol": "sha",
        "priv_protocol": "aes128",
    }

    response = pages_for(admin_user).post(f"/alerts/rules/{rule.pk}/edit/", data)

    assert response.status_code == 302, response.context["form"].errors
    entry = only_entry(action="changed")
    assert entry.source == "page" and entry.changes["name"] == ["nms", "nms-core"]
    assert "community" not in entry.changes  # left blank: the stored secret is kept


def test_giving_a_user_a_role_in_the_admin_is_recorded(viewer_user):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)  # users are the superuser's
    operators = Group.objects.get_or_create(name="operator")[0]
    viewer = Group.objects.get(name="viewer")
    data = {
        "username": viewer_user.username,
        "is_active": "on",
        "groups": [operators.pk, *viewer_user.groups.values_list("pk", flat=True)],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }

    response = pages_for(root).post(f"/admin/auth/user/{viewer_user.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = only_entry(object_type="user")
    assert entry.username == "root" and entry.object_name == "victor-viewer"
    before, after = entry.changes["groups"]
    assert before == [f"viewer (#{viewer.pk})"]
    assert sorted(after) == [f"operator (#{operators.pk})", f"viewer (#{viewer.pk})"]
    assert "password" not in entry.changes  # unchanged, and never its hash
