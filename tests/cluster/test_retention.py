"""Retention (cluster/retention.py): the daily `prune_old_rows` task deletes events, failover
incidents, deliveries, replication jobs and login logs older than their `RETENTION_*_DAYS`, in
batches, and keeps what is still in use whatever its age: open incidents, undelivered notifications,
running and latest jobs."""

from datetime import timedelta

import pytest
from axes.models import AccessFailureLog, AccessLog
from celery.schedules import crontab
from django.conf import settings
from django.utils import timezone

from alerts.choices import Channel, DeliveryStatus, EventType
from alerts.models import Delivery, Event, NotificationRule
from cluster.models import Incident, IncidentStep, ReplicationJob
from cluster.retention import delete_in_batches
from cluster.tasks import prune_old_rows
from dms_admin.celery import app
from tests.factories import ClusterFactory, EventFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()
OLD = NOW - timedelta(days=400)  # past every default retention
RECENT = NOW - timedelta(days=10)  # within every default retention


def event(type=EventType.FAILOVER_COMPLETED, at=OLD, **fields) -> Event:
    made = EventFactory(type=type, **fields)
    Event.objects.filter(pk=made.pk).update(created_at=at)
    return made


def delivery(of: Event, status: str, at=OLD) -> Delivery:
    rule = NotificationRule.objects.create(
        name=f"ops-{NotificationRule.objects.count()}", channel=Channel.EMAIL, recipients=["ops@example.com"]
    )
    made = Delivery.objects.create(event=of, rule=rule, status=status, next_attempt_at=at, expires_at=at)
    Delivery.objects.filter(pk=made.pk).update(created_at=at)
    return made


def job(cluster, state, at=OLD) -> ReplicationJob:
    made = ReplicationJob.objects.create(cluster=cluster, kind="incremental", state=state, epoch=1)
    finished = None if state == ReplicationJob.State.RUNNING else at
    ReplicationJob.objects.filter(pk=made.pk).update(started_at=at, alive_at=at, finished_at=finished)
    return made


def remaining(model, made) -> set[int]:
    return set(model.objects.filter(pk__in=[m.pk for m in made]).values_list("pk", flat=True))


def test_old_events_go_and_open_incidents_stay():
    closed = event(EventType.SERVER_FAILED)
    its_recovery = event(EventType.SERVER_RECOVERED, recovers=closed)
    still_open = event(EventType.SERVER_FAILED)
    open_component = event(EventType.COMPONENT_FAILED, details={"name": "db"})
    recovered_lately = event(EventType.CRITICAL_SERVICE_FAILED)
    recent_recovery = event(EventType.CRITICAL_SERVICE_RECOVERED, at=RECENT, recovers=recovered_lately)
    old_info = event(EventType.FAILOVER_COMPLETED)
    recent_info = event(EventType.FAILOVER_COMPLETED, at=RECENT)
    waiting_to_be_sent = event(EventType.FAILOVER_COMPLETED)
    delivery(waiting_to_be_sent, DeliveryStatus.PENDING)
    made = [closed, its_recovery, still_open, open_component, recovered_lately, recent_recovery]
    made += [old_info, recent_info, waiting_to_be_sent]

    deleted = prune_old_rows.apply().get()

    kept = {still_open.pk, open_component.pk, recent_recovery.pk, recent_info.pk, waiting_to_be_sent.pk}
    assert remaining(Event, made) == kept
    assert deleted["events"] == 4
    assert Event.objects.get(pk=recent_recovery.pk).recovers is None  # its failure went, the recovery stays


def test_failover_incidents_go_with_the_events_unless_still_open():
    cluster = ClusterFactory()

    def incident(closed_at):
        made = Incident.objects.create(
            cluster=cluster, cause="missed_heartbeats", opened_at=OLD, closed_at=closed_at, from_epoch=1
        )
        IncidentStep.objects.create(incident=made, kind="claimed", at=OLD, actor="failover worker")
        return made

    ended_long_ago, ended_lately, still_open = incident(OLD), incident(RECENT), incident(None)

    deleted = prune_old_rows.apply().get()

    assert deleted["incidents"] == 1
    assert set(Incident.objects.values_list("pk", flat=True)) == {ended_lately.pk, still_open.pk}
    assert not IncidentStep.objects.filter(incident_id=ended_long_ago.pk).exists()


def test_old_deliveries_go_unless_still_pending_or_sending():
    of = event(EventType.FAILOVER_COMPLETED, at=RECENT)
    sent, failed, expired = (delivery(of, status) for status in ["sent", "failed", "expired"])
    pending, sending = delivery(of, DeliveryStatus.PENDING), delivery(of, DeliveryStatus.SENDING)
    recent = delivery(of, DeliveryStatus.DELIVERED, at=RECENT)

    deleted = prune_old_rows.apply().get()

    assert remaining(Delivery, [sent, failed, expired, pending, sending, recent]) == {pending.pk, sending.pk, recent.pk}
    assert deleted["deliveries"] == 3


def test_old_replication_jobs_go_but_each_clusters_latest_and_running_stay():
    a, b, c = ClusterFactory(), ClusterFactory(), ClusterFactory()
    a_old = [job(a, "succeeded"), job(a, "failed"), job(a, "aborted")]
    a_latest = job(a, "succeeded")
    b_old, b_running = job(b, "succeeded"), job(b, "running")
    c_recent = [job(c, "failed", at=RECENT), job(c, "succeeded", at=RECENT)]

    prune_old_rows.apply().get()

    assert remaining(ReplicationJob, [*a_old, a_latest, b_old, b_running, *c_recent]) == {
        a_latest.pk,
        b_running.pk,
        *(j.pk for j in c_recent),
    }


def logged(model, at):
    made = model.objects.create(username="alice", ip_address="10.0.0.1")
    model.objects.filter(pk=made.pk).update(attempt_time=at)
    return made


def test_old_login_logs_go():
    old, recent = logged(AccessLog, OLD), logged(AccessLog, RECENT)
    old_failure, recent_failure = logged(AccessFailureLog, OLD), logged(AccessFailureLog, RECENT)

    deleted = prune_old_rows.apply().get()

    assert remaining(AccessLog, [old, recent]) == {recent.pk}
    assert remaining(AccessFailureLog, [old_failure, recent_failure]) == {recent_failure.pk}
    assert deleted["login_logs"] == 2


def test_the_settings_set_how_long_rows_are_kept_and_zero_keeps_them(settings):
    settings.RETENTION_EVENTS_DAYS = 5
    settings.RETENTION_DELIVERIES_DAYS = 0
    of = event(at=RECENT)
    sent = delivery(of, DeliveryStatus.SENT)

    deleted = prune_old_rows.apply().get()

    assert not Event.objects.filter(pk=of.pk).exists()  # 10 days old, kept 5: its deliveries go with it
    assert "deliveries" not in deleted and not Delivery.objects.filter(pk=sent.pk).exists()


def test_deletes_go_in_batches():
    made = [event() for _ in range(5)]

    assert delete_in_batches(Event.objects.filter(pk__in=[e.pk for e in made]), batch=2) == 5
    assert not remaining(Event, made)


def test_beat_runs_it_daily_on_the_default_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["prune-old-rows"]

    assert entry["task"] == "cluster.tasks.prune_old_rows"
    assert entry["schedule"] == crontab(hour=3, minute=30)
    assert app.amqp.router.route({}, "cluster.tasks.prune_old_rows")["queue"].name == "default"
