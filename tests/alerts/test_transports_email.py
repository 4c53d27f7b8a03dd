"""EmailTransport through Django's SMTP backend to a real (aiosmtpd) SMTP server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from alerts.transports.base import Notification, TransportError
from alerts.transports.email import EmailTransport
from tests.support.smtp import SmtpServer, smtp_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

RECIPIENTS = ["noc@example.com", "oncall@example.com"]


def ensure_django_settings() -> None:
    """Minimal settings when the tests run without pytest-django (`-p no:django`)."""
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings.configure(USE_TZ=True, DEFAULT_FROM_EMAIL="DMS Failover <dms-failover@localhost>")


@pytest.fixture
def mail_server(request: pytest.FixtureRequest, smtp_server: SmtpServer) -> Iterator[SmtpServer]:  # noqa: F811
    """Django's default mail connection pointed at the test SMTP server (pytest-django's own test
    setup switches EMAIL_BACKEND to locmem, so the SMTP backend is set back explicitly)."""
    values = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": smtp_server.port,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 3,
        "DEFAULT_FROM_EMAIL": "DMS Failover <dms-failover@example.com>",
    }
    if request.config.pluginmanager.hasplugin("django") and os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings = request.getfixturevalue("settings")
        for name, value in values.items():
            setattr(settings, name, value)
        yield smtp_server
    else:
        ensure_django_settings()
        with override_settings(**values):
            yield smtp_server


def a_notification(event_id: int = 41, **changes: object) -> Notification:
    notification = Notification(
        event_id=event_id,
        event_type="server_failed",
        severity="critical",
        cluster="dms-cluster-1",
        server="dmm-primary",
        message="Server dmm-primary missed 3 consecutive heartbeats.",
        created_at=datetime(2026, 11, 25, 20, 0, tzinfo=UTC),
        url="http://dms.example/alerts/41/",
        rule_id=7,
    )
    return replace(notification, **changes)  # type: ignore[arg-type]


def event_is(event_id: int):
    return lambda mail: mail.header("X-DMS-Event-Id") == str(event_id)


def test_it_sends_one_email_with_subject_bodies_and_a_stable_message_id(mail_server):
    assert EmailTransport(RECIPIENTS).notify(a_notification(41)) == "delivered"

    mail = mail_server.wait_for(event_is(41))
    assert mail.subject == "[CRITICAL] dms-cluster-1: Server failed"
    assert mail.message_id == "<dms-event-41.rule-7@dms-failover>"
    assert mail.rcpt_tos == RECIPIENTS
    assert mail.mail_from == "dms-failover@example.com"
    for body in (mail.text, mail.html):
        assert "Server dmm-primary missed 3 consecutive heartbeats." in body
        assert "http://dms.example/alerts/41/" in body
        assert "41" in body and "dms-cluster-1" in body
    assert "<a href='http://dms.example/alerts/41/'>Details</a>" in mail.html

    # Exactly once: a later message has arrived, and still one copy of the first.
    EmailTransport(RECIPIENTS).notify(a_notification(42, event_type="server_recovered", severity="info"))
    later = mail_server.wait_for(event_is(42))
    assert later.subject == "[INFO] dms-cluster-1: Server recovered"
    assert len(mail_server.matching(event_is(41))) == 1


def test_a_retried_notification_keeps_its_message_id_so_receivers_can_drop_it(mail_server):
    transport = EmailTransport(RECIPIENTS)
    transport.notify(a_notification(43))
    transport.notify(a_notification(43))
    mail_server.wait_for(lambda mail: len(mail_server.matching(event_is(43))) == 2)
    assert {mail.message_id for mail in mail_server.matching(event_is(43))} == {"<dms-event-43.rule-7@dms-failover>"}


def test_the_same_event_for_another_rule_has_another_message_id(mail_server):
    EmailTransport(RECIPIENTS).notify(a_notification(44, rule_id=8))
    assert mail_server.wait_for(event_is(44)).message_id == "<dms-event-44.rule-8@dms-failover>"


def test_test_sends_are_marked_and_never_share_a_message_id(mail_server):
    transport = EmailTransport(RECIPIENTS)
    transport.notify(a_notification(45, is_test=True))
    transport.notify(a_notification(45, is_test=True))
    mail_server.wait_for(lambda mail: len(mail_server.matching(event_is(45))) == 2)
    first, second = mail_server.matching(event_is(45))
    assert first.message_id != second.message_id
    assert first.message_id.startswith("<dms-event-45.rule-7.test-")
    assert first.subject == "[TEST] [CRITICAL] dms-cluster-1: Server failed"
    assert "test notification" in first.text


def test_the_html_body_escapes_what_the_event_says(mail_server):
    EmailTransport(RECIPIENTS).notify(a_notification(46, message="<script>alert(1)</script> & more"))
    mail = mail_server.wait_for(event_is(46))
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in mail.html
    assert "<script>alert(1)</script> & more" in mail.text


def test_a_mail_server_that_is_down_raises_a_retryable_error(mail_server):
    mail_server.stop()
    with pytest.raises(TransportError) as caught:
        EmailTransport(RECIPIENTS).notify(a_notification(47))
    assert caught.value.permanent is False
    assert "unreachable" in caught.value.message

    mail_server.start()  # back: the retry goes through
    assert EmailTransport(RECIPIENTS).notify(a_notification(47)) == "delivered"
    assert len(mail_server.matching(event_is(47))) == 1


def test_recipients_refused_for_good_raise_a_permanent_error(mail_server):
    for address in RECIPIENTS:
        mail_server.refuse[address] = "550 5.1.1 No such user"
    with pytest.raises(TransportError) as caught:
        EmailTransport(RECIPIENTS).notify(a_notification(48))
    assert caught.value.permanent is True
    assert "550" in caught.value.message and "noc@example.com" in caught.value.message


def test_recipients_refused_for_now_raise_a_retryable_error(mail_server):
    for address in RECIPIENTS:
        mail_server.refuse[address] = "450 4.2.1 Mailbox busy, try later"
    with pytest.raises(TransportError) as caught:
        EmailTransport(RECIPIENTS).notify(a_notification(49))
    assert caught.value.permanent is False


def test_a_rule_without_recipients_is_a_permanent_error(mail_server):
    with pytest.raises(TransportError) as caught:
        EmailTransport([]).notify(a_notification(50))
    assert caught.value.permanent is True
