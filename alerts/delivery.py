"""Sending notifications from the outbox (DESIGN §4.5, STYLE: healthchecks' pattern).

The contract:
- `create_deliveries(event)` writes one `Delivery` per rule that sends the event, in the caller's
  transaction (record_event). Nothing is sent for a cluster in maintenance.
- A delivery is sent by whoever *claims* it: one conditional UPDATE from pending (and due) to
  sending, with a claim deadline; a row count of 1 means "mine". Any number of workers can run.
- Each attempt is a `DeliveryAttempt` row, written before sending and completed after.
- A transient error puts the row back to pending with exponential backoff; a permanent one
  (`TransportError.permanent`) fails it; a row still undelivered at `expires_at` expires.
- `sweep()` (periodic) re-queues what a lost task left behind: pending rows past their time and
  sending rows past their claim. Sending is therefore at least once; the event id travels in every
  trap and in the email's Message-ID so that receivers can drop duplicates.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.mail import get_connection
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from .choices import SEVERITY_OF, AttemptOutcome, Channel, DeliveryStatus, EventType
from .models import Delivery, DeliveryAttempt, Event, NotificationRule, SnmpEngineId
from .transports.base import Notification, Outcome, Transport, TransportError
from .transports.email import EmailTransport

logger = logging.getLogger(__name__)

# The Celery task that sends one delivery (alerts/tasks.py registers it under this name). Queued by
# name, so that this module, which the task calls, does not import the tasks module back.
DELIVER_TASK = "alerts.tasks.deliver"


def setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def expiry() -> timedelta:
    return timedelta(seconds=setting("NOTIFICATION_EXPIRY_S", 86400))


def backoff_s(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, …): base, 2 × base, 4 × base, …
    capped at the maximum."""
    base = setting("NOTIFICATION_RETRY_BASE_S", 30)
    cap = setting("NOTIFICATION_RETRY_MAX_S", 3600)
    return min(cap, base * 2 ** max(0, attempt - 1))


# -- the engine ID


def snmp_engine_id() -> str:
    """The product's SNMP engine ID: the SNMP_ENGINE_ID setting, else one generated once and kept."""
    configured = getattr(settings, "SNMP_ENGINE_ID", "")
    if configured:
        return configured
    row = SnmpEngineId.objects.filter(pk=1).first()
    if row is None:
        # Imported where used, not for a cycle: pysnmp and its MIBs take tens of ms to load, paid only
        # by the processes that send SNMP (not the web app's or the heartbeat workers').
        from .transports.snmp import generate_engine_id

        try:
            row, _ = SnmpEngineId.objects.get_or_create(pk=1, defaults={"engine_id": generate_engine_id()})
        except IntegrityError:  # another process made it first
            row = SnmpEngineId.objects.get(pk=1)
    return row.engine_id


# -- writing the outbox


def rules_for(event: Event) -> list[NotificationRule]:
    """The rules that send `event`: for a recovery, exactly the (enabled) rules its failure went to;
    none while its cluster is in maintenance."""
    if event.recovers_id is not None:
        rules = list(NotificationRule.objects.filter(enabled=True, deliveries__event_id=event.recovers_id).distinct())
    else:
        rules = list(NotificationRule.objects.filter(enabled=True))
        if rules:
            cluster_ids: dict[int, set[int]] = {}
            through = NotificationRule.clusters.through.objects.filter(notificationrule__enabled=True)
            for rule_id, cluster_id in through.values_list("notificationrule_id", "cluster_id"):
                cluster_ids.setdefault(rule_id, set()).add(cluster_id)
            rules = [rule for rule in rules if rule.matches(event, cluster_ids.get(rule.pk, set()))]
    if rules and event.cluster_id is not None and _in_maintenance(event.cluster_id):
        return []
    return rules


def _in_maintenance(cluster_id: int) -> bool:
    # Read from the database, not from the caller's instance: an administrator may have switched
    # maintenance on since the caller loaded its cluster row.
    cluster_model = Event._meta.get_field("cluster").related_model
    return cluster_model._default_manager.filter(pk=cluster_id, maintenance=True).exists()  # type: ignore[union-attr]


def create_deliveries(event: Event) -> list[Delivery]:
    """One pending delivery per rule that sends `event`; call inside the event's transaction."""
    rules = rules_for(event)
    if not rules:
        return []
    now = timezone.now()
    expires_at = (event.created_at or now) + expiry()
    return Delivery.objects.bulk_create(
        [Delivery(event=event, rule=rule, next_attempt_at=now, expires_at=expires_at) for rule in rules]
    )


def enqueue(delivery_id: int, countdown: float | None = None) -> None:
    """Queue the delivery task; a broker outage is logged, not raised (the sweeper catches up)."""
    try:
        current_app.send_task(DELIVER_TASK, (delivery_id,), countdown=countdown)
    except Exception as exc:
        logger.warning("delivery %s not queued (%s); the sweeper will queue it", delivery_id, type(exc).__name__)


# -- sending


def event_url(event_id: int) -> str:
    return settings.SITE_URL + reverse("alerts:event_detail", args=[event_id])


def build_notification(event: Event, rule: NotificationRule | None) -> Notification:
    return Notification(
        event_id=event.pk,
        event_type=event.type,
        severity=event.severity,
        cluster=event.cluster.name if event.cluster else "",
        server=event.server.name if event.server else "",
        message=event.message,
        created_at=event.created_at,
        url=event_url(event.pk),
        rule_id=rule.pk if rule else None,
    )


def transport_for(rule: NotificationRule, *, timeout: float | None = None) -> Transport:
    """The rule's channel as a Transport; `timeout` shortens waits (the "send test" button)."""
    if rule.channel == Channel.EMAIL:
        connection = get_connection(fail_silently=False, timeout=timeout) if timeout else None
        return EmailTransport(rule.recipients, connection=connection)
    from .transports.snmp import SnmpTarget, SnmpTransport  # lazy: see snmp_engine_id

    v3 = rule.snmp_version == "v3"
    target = SnmpTarget(
        host=rule.host,
        port=rule.port,
        version=rule.snmp_version,  # type: ignore[arg-type]
        community="" if v3 else rule.community,
        user=rule.snmp_user if v3 else "",
        auth_protocol=rule.auth_protocol if v3 else "none",
        auth_key=rule.auth_key if v3 else "",
        priv_protocol=rule.priv_protocol if v3 else "none",
        priv_key=rule.priv_key if v3 else "",
        mode=rule.snmp_mode,  # type: ignore[arg-type]
        timeout=min(timeout, 3.0) if timeout else setting("SNMP_INFORM_TIMEOUT_S", 3.0),
        retries=0 if timeout else 1,
    )
    return SnmpTransport(target, snmp_engine_id())


def send_test(rule: NotificationRule, timeout: float = 5.0) -> Outcome:
    """Send a test notification for `rule` now; returns the outcome or raises TransportError."""
    event_type = EventType(rule.event_types[0]) if rule.event_types else EventType.SERVER_FAILED
    notification = Notification(
        event_id=0,
        event_type=event_type.value,
        severity=SEVERITY_OF[event_type].value,
        cluster="test-cluster",
        server="",
        message=f"Test notification from DMS Failover for rule “{rule.name}”.",
        created_at=timezone.now(),
        url=settings.SITE_URL + reverse("alerts:rule_list"),
        rule_id=rule.pk,
        is_test=True,
    )
    return transport_for(rule, timeout=timeout).notify(notification)


def expire_if_due(delivery_id: int) -> bool:
    now = timezone.now()
    return bool(
        Delivery.objects.filter(id=delivery_id, status=DeliveryStatus.PENDING, expires_at__lte=now).update(
            status=DeliveryStatus.EXPIRED, finished_at=now, updated_at=now
        )
    )


def claim(delivery_id: int) -> Delivery | None:
    """Take a due pending delivery for one attempt. None: not due, not pending, or someone else's."""
    now = timezone.now()
    claimed_until = now + timedelta(seconds=setting("NOTIFICATION_CLAIM_S", 120))
    taken = Delivery.objects.filter(
        id=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now, expires_at__gt=now
    ).update(status=DeliveryStatus.SENDING, claimed_until=claimed_until, attempts=F("attempts") + 1, updated_at=now)
    if taken != 1:
        return None
    return Delivery.objects.select_related("event__cluster", "event__server", "rule").get(id=delivery_id)


def attempt(delivery: Delivery) -> str:
    """One attempt of a claimed delivery; records it and returns the delivery's new status."""
    rule, event = delivery.rule, delivery.event
    started = timezone.now()
    log = DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=started)
    error, permanent, outcome = "", False, None
    try:
        outcome = transport_for(rule).notify(build_notification(event, rule))
    except TransportError as exc:
        error, permanent = exc.message, exc.permanent
    except Exception as exc:  # a bug or an unforeseen library error: retried, and logged for us
        logger.exception("delivery %s: unexpected error", delivery.pk)
        error = f"Unexpected error ({type(exc).__name__})"
    error = error[:500]
    now = timezone.now()
    mine = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING, claimed_until=delivery.claimed_until)

    if outcome is not None:
        status = DeliveryStatus.DELIVERED if outcome == "delivered" else DeliveryStatus.SENT
        with transaction.atomic():  # one commit for the three rows, not three (bench/notify.py)
            DeliveryAttempt.objects.filter(pk=log.pk).update(finished_at=now, outcome=outcome)
            mine.update(status=status, finished_at=now, claimed_until=None, last_error="", updated_at=now)
            NotificationRule.objects.filter(pk=rule.pk).update(last_delivery_at=now, last_error="")
        logger.info("delivery %s: event %s to rule %s %s", delivery.pk, event.pk, rule.pk, status)
        return status

    retry_at = now + timedelta(seconds=backoff_s(delivery.attempts))
    if permanent:
        status = DeliveryStatus.FAILED
    elif retry_at >= delivery.expires_at:
        status = DeliveryStatus.EXPIRED
    else:
        status = DeliveryStatus.PENDING
    changes = {"status": status, "claimed_until": None, "last_error": error, "updated_at": now}
    if status == DeliveryStatus.PENDING:
        changes["next_attempt_at"] = retry_at
    else:
        changes["finished_at"] = now
    with transaction.atomic():
        DeliveryAttempt.objects.filter(pk=log.pk).update(
            finished_at=now, outcome=AttemptOutcome.REFUSED if permanent else AttemptOutcome.FAILED, error=error
        )
        updated = mine.update(**changes)
        NotificationRule.objects.filter(pk=rule.pk).update(last_error=error)
    logger.warning("delivery %s: attempt %s failed (%s): %s", delivery.pk, delivery.attempts, status, error)
    if updated and status == DeliveryStatus.PENDING:
        enqueue(delivery.pk, countdown=(retry_at - timezone.now()).total_seconds())
    return status


def deliver(delivery_id: int) -> str | None:
    """Claim and attempt one delivery; None when there was nothing to do (not due or not mine)."""
    if expire_if_due(delivery_id):
        return DeliveryStatus.EXPIRED
    delivery = claim(delivery_id)
    if delivery is None:
        return None
    return attempt(delivery)


def sweep(limit: int = 1000) -> dict[str, int]:
    """Expire what is past its time, release claims whose worker vanished, re-queue lost tasks."""
    now = timezone.now()
    expired = Delivery.objects.filter(status=DeliveryStatus.PENDING, expires_at__lte=now).update(
        status=DeliveryStatus.EXPIRED, finished_at=now, updated_at=now
    )
    released = 0
    stale = Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_until__lt=now)
    for delivery_id, claimed_until in stale.values_list("id", "claimed_until")[:limit]:
        # Conditional, like a claim: a worker that finishes meanwhile keeps its result.
        if Delivery.objects.filter(id=delivery_id, status=DeliveryStatus.SENDING, claimed_until=claimed_until).update(
            status=DeliveryStatus.PENDING, claimed_until=None, next_attempt_at=now, updated_at=now
        ):
            DeliveryAttempt.objects.filter(delivery_id=delivery_id, finished_at__isnull=True).update(
                finished_at=now, outcome=AttemptOutcome.INTERRUPTED, error="The worker stopped during the attempt."
            )
            released += 1
    grace = timedelta(seconds=setting("NOTIFICATION_SWEEP_GRACE_S", 30))
    due = Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now - grace)
    requeued = 0
    for delivery_id in list(due.values_list("id", flat=True)[:limit]) + _released_ids(now):
        enqueue(delivery_id)
        requeued += 1
    return {"expired": expired, "released": released, "requeued": requeued}


def _released_ids(now) -> list[int]:  # noqa: ANN001
    # Rows just released above: due now, so queued without waiting out the grace period.
    return list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at=now).values_list("id", flat=True)
    )
