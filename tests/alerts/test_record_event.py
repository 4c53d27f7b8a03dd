"""record_event writes the event's deliveries in its transaction, for the matching rules only, and
queues them only after the commit; maintenance suppresses; a recovery follows its failure."""

import pytest
from django.db import transaction

from alerts.events import record_event
from alerts.models import Delivery, Event
from tests.alerts.factories import EmailRuleFactory, SnmpRuleFactory
from tests.factories import ClusterFactory


@pytest.fixture
def cluster(db):
    return ClusterFactory()


def delivered_rules(event):
    return set(Delivery.objects.filter(event=event).values_list("rule__name", flat=True))


def fail(cluster, **kwargs):
    return record_event("server_failed", "dmm-001 is silent.", cluster=cluster, server=cluster.primary, **kwargs)


def recover(cluster, **kwargs):
    return record_event("server_recovered", "dmm-001 answers again.", cluster=cluster, server=cluster.primary, **kwargs)


def test_it_writes_one_pending_delivery_per_matching_rule(cluster):
    SnmpRuleFactory(name="all-failures")
    EmailRuleFactory(name="this-cluster", clusters=[cluster])
    EmailRuleFactory(name="other-cluster", clusters=[ClusterFactory()])
    SnmpRuleFactory(name="disabled", enabled=False)
    SnmpRuleFactory(name="other-types", event_types=["replication_failed"])
    SnmpRuleFactory(name="critical-only", min_severity="critical")

    event = fail(cluster)

    assert delivered_rules(event) == {"all-failures", "this-cluster", "critical-only"}
    delivery = Delivery.objects.filter(event=event).first()
    assert delivery.status == "pending" and delivery.attempts == 0
    assert delivery.next_attempt_at <= delivery.expires_at


def test_min_severity_compares_ranks(cluster):
    SnmpRuleFactory(name="warnings-up", min_severity="warning", event_types=["component_failed", "licenses_copied"])

    warning = record_event("component_failed", "Disk 2 failed.", cluster=cluster)
    info = record_event("licenses_copied", "Licenses copied.", cluster=cluster)

    assert delivered_rules(warning) == {"warnings-up"}
    assert delivered_rules(info) == set()


def test_an_event_without_a_cluster_goes_only_to_rules_for_all_clusters(cluster):
    SnmpRuleFactory(name="everything", event_types=["licenses_copied"])
    SnmpRuleFactory(name="scoped", event_types=["licenses_copied"], clusters=[cluster])

    event = record_event("licenses_copied", "Licenses copied.")

    assert delivered_rules(event) == {"everything"}


def test_the_expiry_counts_from_the_event(cluster, settings):
    settings.NOTIFICATION_EXPIRY_S = 3600
    SnmpRuleFactory()

    event = fail(cluster)

    delivery = Delivery.objects.get(event=event)
    assert (delivery.expires_at - event.created_at).total_seconds() == pytest.approx(3600)


def test_deliveries_share_the_events_transaction(cluster):
    SnmpRuleFactory()

    with pytest.raises(RuntimeError), transaction.atomic():
        fail(cluster)
        raise RuntimeError("the state change failed")

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_tasks_are_queued_only_on_commit_one_per_delivery(cluster, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr("alerts.delivery.enqueue", lambda delivery_id, countdown=None: queued.append(delivery_id))
    SnmpRuleFactory()
    EmailRuleFactory()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event = fail(cluster)
        assert queued == []

    assert len(callbacks) == 2
    assert sorted(queued) == sorted(Delivery.objects.filter(event=event).values_list("id", flat=True))


def test_no_rule_no_callback(cluster, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        fail(cluster)

    assert callbacks == []


def test_a_cluster_in_maintenance_records_but_sends_nothing(cluster):
    SnmpRuleFactory()
    cluster.maintenance = True
    cluster.save()

    event = fail(cluster)

    assert Event.objects.filter(pk=event.pk).exists()
    assert delivered_rules(event) == set()


def test_maintenance_is_read_from_the_database_not_the_callers_instance(cluster):
    from cluster.models import Cluster

    SnmpRuleFactory()
    Cluster.objects.filter(pk=cluster.pk).update(maintenance=True)  # cluster (in memory) still says False

    assert delivered_rules(fail(cluster)) == set()


def test_a_recovery_goes_exactly_to_the_rules_its_failure_went_to(cluster):
    SnmpRuleFactory(name="both")
    SnmpRuleFactory(name="failure-only", event_types=["server_failed"])
    SnmpRuleFactory(name="recovery-only", event_types=["server_recovered"])
    failure = fail(cluster)
    SnmpRuleFactory(name="created-later")

    recovery = recover(cluster, recovers=failure)

    assert delivered_rules(failure) == {"both", "failure-only"}
    assert delivered_rules(recovery) == {"both", "failure-only"}
    assert recovery.recovers == failure


def test_a_recovery_of_an_unnotified_failure_is_not_notified(cluster):
    cluster.maintenance = True
    cluster.save()
    failure = fail(cluster)
    cluster.maintenance = False
    cluster.save()
    SnmpRuleFactory()

    recovery = recover(cluster, recovers=failure)

    assert delivered_rules(recovery) == set()


def test_a_recovery_without_recovers_closes_the_newest_open_failure(cluster):
    SnmpRuleFactory(name="rule")
    fail(cluster)
    recover(cluster)
    second_failure = fail(cluster)

    recovery = recover(cluster)

    assert recovery.recovers == second_failure
    assert delivered_rules(recovery) == {"rule"}


def test_a_recovery_must_name_its_own_failure_type(cluster):
    failure = record_event("replication_failed", "Replication failed.", cluster=cluster)

    with pytest.raises(ValueError, match="cannot recover"):
        recover(cluster, recovers=failure)


def test_a_disabled_rule_gets_no_recovery(cluster):
    rule = SnmpRuleFactory(name="rule")
    failure = fail(cluster)
    rule.enabled = False
    rule.save()

    assert delivered_rules(recover(cluster, recovers=failure)) == set()
