"""Email notifications through Django's mail framework (the settings' EMAIL_* connection).

One message per notification to all of a rule's recipients, plain text with an HTML alternative.
Its Message-ID is derived from the event and the rule, `<dms-event-{event}.rule-{rule}@dms-failover>`,
so a retried delivery of the same event to the same rule carries the same id and mail systems and
readers can drop the duplicate (DESIGN §4 invariant 5). Test sends get a unique suffix, so
repeated tests are never dropped.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid

from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from alerts.choices import EventType
from alerts.transports.base import DELIVERED, Notification, Outcome, Transport, TransportError

logger = logging.getLogger(__name__)

MESSAGE_ID_DOMAIN = "dms-failover"


def message_id(notification: Notification) -> str:
    rule = notification.rule_id if notification.rule_id is not None else "none"
    local = f"dms-event-{notification.event_id}.rule-{rule}"
    if notification.is_test:
        # 48 random bits: unique enough, and short enough that the header is never folded.
        local += f".test-{uuid.uuid4().hex[:12]}"
    return f"<{local}@{MESSAGE_ID_DOMAIN}>"


def event_label(event_type: str) -> str:
    try:
        return str(EventType(event_type).label)
    except ValueError:
        return event_type.replace("_", " ").capitalize()


def subject(notification: Notification) -> str:
    """`[CRITICAL] dms-cluster-1: Server failed`; a test send says so."""
    text = f"[{notification.severity.upper()}] {notification.cluster}: {event_label(notification.event_type)}"
    if notification.is_test:
        text = "[TEST] " + text
    return " ".join(text.split())  # no line breaks in a header, whatever the names hold


def text_body(notification: Notification) -> str:
    lines = [
        notification.message,
        "",
        f"Event:    {event_label(notification.event_type)} ({notification.event_type})",
        f"Severity: {notification.severity}",
        f"Cluster:  {notification.cluster}",
    ]
    if notification.server:
        lines.append(f"Server:   {notification.server}")
    lines += [
        f"Time:     {notification.created_at.isoformat()}",
        f"Event id: {notification.event_id}",
        "",
        f"Details: {notification.url}",
    ]
    if notification.is_test:
        lines += ["", "This is a test notification sent from a notification rule's page."]
    return "\n".join(lines) + "\n"


def html_body(notification: Notification) -> str:
    rows = [
        ("Event", f"{event_label(notification.event_type)} ({notification.event_type})"),
        ("Severity", notification.severity),
        ("Cluster", notification.cluster),
        *([("Server", notification.server)] if notification.server else []),
        ("Time", notification.created_at.isoformat()),
        ("Event id", str(notification.event_id)),
    ]
    table = "".join(str(format_html("<tr><th align='left'>{}</th><td>{}</td></tr>", k, v)) for k, v in rows)
    test_note = "<p><em>This is a test notification sent from a notification rule's page.</em></p>"
    return str(
        format_html(
            "<html><body><p>{}</p><table>{}</table><p><a href='{}'>Details</a></p>{}</body></html>",
            notification.message,
            mark_safe(table),  # escaped cell by cell above
            notification.url,
            mark_safe(test_note) if notification.is_test else "",
        )
    )


def _smtp_code(exc: smtplib.SMTPException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        # Permanent only when every recipient was refused for good.
        return min(codes) if codes else None
    return getattr(exc, "smtp_code", None)


class EmailTransport(Transport):
    """Sends one email per notification to `recipients`. See Transport for the contract."""

    def __init__(self, recipients: list[str], *, from_email: str | None = None, connection: object = None) -> None:
        self.recipients = list(recipients)
        self.from_email = from_email  # None: settings.DEFAULT_FROM_EMAIL
        self.connection = connection  # None: a new connection from the settings' EMAIL_BACKEND

    def build_message(self, notification: Notification) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(
            subject=subject(notification),
            body=text_body(notification),
            from_email=self.from_email,
            to=self.recipients,
            headers={
                "Message-ID": message_id(notification),
                "X-DMS-Event-Id": str(notification.event_id),
                "X-DMS-Event-Type": notification.event_type,
                "X-DMS-Severity": notification.severity,
            },
            connection=self.connection or get_connection(fail_silently=False),
        )
        message.attach_alternative(html_body(notification), "text/html")
        return message

    def notify(self, notification: Notification) -> Outcome:
        if not self.recipients:
            raise TransportError("no email recipients", permanent=True)
        message = self.build_message(notification)
        try:
            sent = message.send(fail_silently=False)
        except smtplib.SMTPException as exc:
            code = _smtp_code(exc)
            permanent = (code is not None and code >= 500) or isinstance(exc, smtplib.SMTPNotSupportedError)
            error = f"SMTP refused the message ({code}): {self._describe(exc)}" if code else f"SMTP failed: {exc}"
            logger.warning("event %s: email to %s: %s", notification.event_id, self.recipients, error)
            raise TransportError(error, permanent=permanent) from None
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(f"SMTP server certificate refused: {exc.verify_message}", permanent=True) from None
        except OSError as exc:  # refused, unreachable, timed out, TLS handshake cut
            error = f"SMTP server unreachable: {exc.strerror or exc}"
            logger.warning("event %s: email to %s: %s", notification.event_id, self.recipients, error)
            raise TransportError(error) from None
        if not sent:
            raise TransportError("the mail backend sent nothing")
        logger.info("event %s: email to %s delivered", notification.event_id, self.recipients)
        return DELIVERED

    @staticmethod
    def _describe(exc: smtplib.SMTPException) -> str:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return "; ".join(
                f"{rcpt}: {code} {reply.decode(errors='replace')}" for rcpt, (code, reply) in exc.recipients.items()
            )
        reply = getattr(exc, "smtp_error", b"")
        return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
