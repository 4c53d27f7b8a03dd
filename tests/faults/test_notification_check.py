"""The fault matrix's notification check can fail: a notification a receiver never got, or got
twice, is named in the failure (event, type, target, what the outbox says). The product's email
transport sends to a real SMTP server of this test's own; no control plane is involved."""

import pytest
from django.core.mail import get_connection

from alerts.delivery import build_notification
from alerts.models import Delivery, Event
from alerts.transports.email import EmailTransport
from tests.factories import ClusterFactory
from tests.support.notifications import ClusterNotifications, Sinks
from tests.support.smtp import SmtpServer


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def notified(db, smtp):
    """A cluster with an email rule and two events whose deliveries say "delivered"."""
    cluster = ClusterFactory(name="checked")
    check = ClusterNotifications.create_rules(cluster, Sinks(smtp, trapd=None))
    rule_id = check.targets[0].rule_id
    events = [
        Event.objects.create(type=kind, severity=severity, cluster=cluster, message=f"{kind}.")
        for kind, severity in (("server_failed", "critical"), ("failover_completed", "critical"))
    ]
    for event in events:
        Delivery.objects.create(
            event=event, rule_id=rule_id, status="delivered", attempts=1, next_attempt_at=event.created_at,
            expires_at=event.created_at,
        )  # fmt: skip
    return check, events


def send(smtp: SmtpServer, event: Event) -> None:
    connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=smtp.port)
    rule = event.deliveries.get().rule
    EmailTransport(rule.recipients, connection=connection).notify(build_notification(event, rule))


def test_it_passes_when_each_event_arrived_once(smtp, notified):
    check, events = notified
    for event in events:
        send(smtp, event)

    check.assert_delivered(exactly_once=True, timeout=2)


def test_it_names_the_event_a_receiver_never_got(smtp, notified):
    check, (failed, completed) = notified
    send(smtp, failed)

    with pytest.raises(AssertionError) as error:
        check.assert_delivered(exactly_once=False, timeout=0.5)

    assert f"event {completed.pk} failover_completed → email: received 0×" in str(error.value)
    assert f"event {failed.pk} " not in str(error.value)


def test_it_names_a_duplicate_only_where_exactly_once_is_due(smtp, notified):
    check, (failed, completed) = notified
    send(smtp, failed)
    send(smtp, failed)
    send(smtp, completed)

    check.assert_delivered(exactly_once=False, timeout=2)  # a crash allows a repeat
    with pytest.raises(AssertionError) as error:
        check.assert_delivered(exactly_once=True, timeout=2)
    assert f"event {failed.pk} server_failed → email: received 2×" in str(error.value)
