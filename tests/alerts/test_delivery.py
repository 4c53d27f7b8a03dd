"""The outbox's sending side: exclusive claims, attempts recorded, backoff, expiry, the sweeper,
the engine ID and what a notification carries."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts import delivery as outbox
from alerts.models import Delivery, DeliveryAttempt, NotificationRule, SnmpEngineId
from alerts.transports.base import TransportError
from tests.alerts.factories import DeliveryFactory, EmailRuleFactory, SnmpRuleFactory
from tests.factories import ClusterFactory, EventFactory


class FakeTransport:
    def __init__(self, *results):
        self.results = list(results)
        self.sent = []

    def notify(self, notification):
        self.sent.append(notification)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def transport(monkeypatch):
    fake = FakeTransport()
    monkeypatch.setattr(outbox, "transport_for", lambda rule, timeout=None: fake)
    return fake


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr(outbox, "enqueue", lambda delivery_id, countdown=None: calls.append((delivery_id, countdown)))
    return calls


@pytest.fixture
def short_backoff(settings):
    settings.NOTIFICATION_RETRY_BASE_S = 10
    settings.NOTIFICATION_RETRY_MAX_S = 100


def test_the_backoff_doubles_up_to_the_maximum(short_backoff):
    assert [outbox.backoff_s(n) for n in range(1, 8)] == [10, 20, 40, 80, 100, 100, 100]


def test_a_claim_takes_a_due_pending_delivery_once(db):
    delivery = DeliveryFactory()

    first = outbox.claim(delivery.pk)
    second = outbox.claim(delivery.pk)

    assert first is not None and first.status == "sending" and first.attempts == 1
    assert first.claimed_until > timezone.now()
    assert second is None


def test_a_claim_refuses_what_is_not_due_or_not_pending(db):
    later = DeliveryFactory(next_attempt_at=timezone.now() + timedelta(minutes=1))
    done = DeliveryFactory(status="delivered")
    expired = DeliveryFactory(expires_at=timezone.now() - timedelta(seconds=1))

    assert outbox.claim(later.pk) is None
    assert outbox.claim(done.pk) is None
    assert outbox.claim(expired.pk) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_have_exactly_one_winner():
    delivery = DeliveryFactory()
    barrier = threading.Barrier(8)
    winners = []

    def contend():
        try:
            barrier.wait()
            if outbox.claim(delivery.pk) is not None:
                winners.append(threading.get_ident())
        finally:
            connection.close()

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(winners) == 1
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1


def test_a_successful_attempt_is_recorded_on_the_delivery_the_attempt_and_the_rule(db, transport, queued):
    transport.results = ["delivered"]
    delivery = DeliveryFactory(rule=EmailRuleFactory(last_error="old error"))

    assert outbox.deliver(delivery.pk) == "delivered"

    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.finished_at and delivery.claimed_until is None
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert (attempt.number, attempt.outcome, attempt.error) == (1, "delivered", "")
    assert attempt.finished_at >= attempt.started_at
    rule = NotificationRule.objects.get(pk=delivery.rule_id)
    assert rule.last_delivery_at is not None and rule.last_error == ""
    assert queued == []


def test_a_trap_counts_as_sent(db, transport, queued):
    transport.results = ["sent"]
    delivery = DeliveryFactory()

    assert outbox.deliver(delivery.pk) == "sent"


def test_a_transient_error_retries_with_backoff(db, transport, queued, short_backoff):
    transport.results = [TransportError("SNMP inform timed out"), TransportError("SNMP inform timed out"), "delivered"]
    delivery = DeliveryFactory()

    assert outbox.deliver(delivery.pk) == "pending"
    delivery.refresh_from_db()
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 8 < wait <= 10
    assert delivery.last_error == "SNMP inform timed out" and delivery.attempts == 1
    assert queued[-1][0] == delivery.pk and 8 < queued[-1][1] <= 10
    assert NotificationRule.objects.get(pk=delivery.rule_id).last_error == "SNMP inform timed out"
    assert outbox.deliver(delivery.pk) is None  # not due yet

    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert outbox.deliver(delivery.pk) == "pending"
    delivery.refresh_from_db()
    assert 18 < (delivery.next_attempt_at - timezone.now()).total_seconds() <= 20

    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert outbox.deliver(delivery.pk) == "delivered"
    outcomes = list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "outcome"))
    assert outcomes == [(1, "failed"), (2, "failed"), (3, "delivered")]
    assert len(transport.sent) == 3 and {n.event_id for n in transport.sent} == {delivery.event_id}


def test_a_permanent_error_fails_at_once(db, transport, queued):
    transport.results = [TransportError("SMTP refused the message (550)", permanent=True)]
    delivery = DeliveryFactory()

    assert outbox.deliver(delivery.pk) == "failed"

    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.finished_at
    assert DeliveryAttempt.objects.get(delivery=delivery).outcome == "refused"
    assert queued == []


def test_it_expires_when_the_next_try_would_come_too_late(db, transport, queued, short_backoff):
    transport.results = [TransportError("unreachable")]
    delivery = DeliveryFactory(expires_at=timezone.now() + timedelta(seconds=5))

    assert outbox.deliver(delivery.pk) == "expired"
    assert Delivery.objects.get(pk=delivery.pk).last_error == "unreachable"


def test_it_never_sends_a_delivery_past_its_expiry(db, transport, queued):
    delivery = DeliveryFactory(expires_at=timezone.now() - timedelta(seconds=1))

    assert outbox.deliver(delivery.pk) == "expired"
    assert transport.sent == []


def test_an_unexpected_error_is_retried_not_lost(db, transport, queued):
    transport.results = [KeyError("boom")]
    delivery = DeliveryFactory()

    assert outbox.deliver(delivery.pk) == "pending"
    assert Delivery.objects.get(pk=delivery.pk).last_error == "Unexpected error (KeyError)"


def test_the_sweeper_releases_lost_claims_and_requeues_lost_tasks(db, queued, settings):
    settings.NOTIFICATION_SWEEP_GRACE_S = 30
    now = timezone.now()
    stale = DeliveryFactory(status="sending", attempts=1, claimed_until=now - timedelta(seconds=1))
    DeliveryAttempt.objects.create(delivery=stale, number=1, started_at=now - timedelta(minutes=2))
    working = DeliveryFactory(status="sending", attempts=1, claimed_until=now + timedelta(minutes=1))
    lost = DeliveryFactory(next_attempt_at=now - timedelta(minutes=5))
    fresh = DeliveryFactory(next_attempt_at=now)
    old = DeliveryFactory(expires_at=now - timedelta(seconds=1))

    counts = outbox.sweep()

    assert counts == {"expired": 1, "released": 1, "requeued": 2}
    assert {delivery_id for delivery_id, _ in queued} == {stale.pk, lost.pk}
    assert Delivery.objects.get(pk=stale.pk).status == "pending"
    assert DeliveryAttempt.objects.get(delivery=stale).outcome == "interrupted"
    assert Delivery.objects.get(pk=working.pk).status == "sending"
    assert Delivery.objects.get(pk=fresh.pk).status == "pending"
    assert Delivery.objects.get(pk=old.pk).status == "expired"


def test_a_notification_carries_the_event_and_its_url(db, settings):
    settings.SITE_URL = "https://dms.example.com"
    cluster = ClusterFactory(name="signs-1")
    event = EventFactory(cluster=cluster, server=cluster.primary, message="dmm-001 stopped answering.")
    rule = SnmpRuleFactory()

    notification = outbox.build_notification(event, rule)

    assert notification.event_id == event.pk and notification.rule_id == rule.pk
    assert (notification.cluster, notification.server) == ("signs-1", cluster.primary.name)
    assert notification.url == f"https://dms.example.com/alerts/{event.pk}/"
    assert notification.severity == "critical" and not notification.is_test


def test_each_channel_has_its_transport(db):
    from alerts.transports.email import EmailTransport
    from alerts.transports.snmp import SnmpTransport

    snmp = outbox.transport_for(SnmpRuleFactory(snmp_mode="inform"))
    email = outbox.transport_for(EmailRuleFactory(recipients=["a@example.com"]))

    assert isinstance(snmp, SnmpTransport) and snmp.target.mode == "inform" and snmp.target.community
    assert isinstance(email, EmailTransport) and email.recipients == ["a@example.com"]


def test_the_engine_id_is_generated_once_and_kept(db, settings):
    settings.SNMP_ENGINE_ID = ""

    first = outbox.snmp_engine_id()

    assert first == outbox.snmp_engine_id() == SnmpEngineId.objects.get().engine_id
    assert first.startswith("80007ed905") and len(first) == 26


def test_the_engine_id_setting_wins(db, settings):
    settings.SNMP_ENGINE_ID = "80007ed9050102030405060708"

    assert outbox.snmp_engine_id() == "80007ed9050102030405060708"
    assert not SnmpEngineId.objects.exists()


def test_failure_messages_never_carry_secrets(db, caplog, transport, queued):
    rule = SnmpRuleFactory(community="s3cret-community")
    transport.results = [TransportError("SNMP trap v2c to 127.0.0.1:16200 (community ***) failed")]

    outbox.deliver(DeliveryFactory(rule=rule).pk)

    assert "s3cret-community" not in caplog.text
    assert "s3cret-community" not in Delivery.objects.get(rule=rule).last_error
