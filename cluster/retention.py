"""Retention: old events, failover incidents, notification deliveries, replication jobs and login
logs are deleted every day (the `prune-old-rows` beat entry), in batches so that no delete holds
long locks.

How long each is kept is a setting (`RETENTION_*_DAYS`; 0 keeps it for ever; incidents go with the
events). What is still in use is never deleted, however old: a failure event whose recovery has not
come (the open incidents are rebuilt from the events after a Redis restart, cluster/heartbeat/incidents.py), an
event with a delivery still pending or sending, a failover incident still open, a delivery still
pending or sending, a running replication job, and each cluster's newest job (its page and list show
the last replication).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.choices import RECOVERY_OF, DeliveryStatus
from alerts.models import Delivery, Event

from .models import Incident, ReplicationJob

log = logging.getLogger(__name__)

BATCH = 1000  # rows per delete: each batch is one short transaction
OPEN_DELIVERY = [DeliveryStatus.PENDING, DeliveryStatus.SENDING]


def old_events(cutoff) -> QuerySet:
    recovered = Event.objects.filter(recovers=OuterRef("pk"))
    undelivered = Delivery.objects.filter(event=OuterRef("pk"), status__in=OPEN_DELIVERY)
    return (
        Event.objects.filter(created_at__lt=cutoff)
        .exclude(Q(type__in=list(RECOVERY_OF)) & ~Exists(recovered))
        .exclude(Exists(undelivered))
    )


def old_incidents(cutoff) -> QuerySet:
    """Incidents that ended before the cutoff (their steps go with them)."""
    return Incident.objects.filter(closed_at__lt=cutoff)


def old_deliveries(cutoff) -> QuerySet:
    return Delivery.objects.filter(created_at__lt=cutoff).exclude(status__in=OPEN_DELIVERY)


def old_replication_jobs(cutoff) -> QuerySet:
    newer = ReplicationJob.objects.filter(cluster=OuterRef("cluster"), pk__gt=OuterRef("pk"))
    return (
        ReplicationJob.objects.annotate(ended_at=Coalesce("finished_at", "started_at"))
        .filter(Exists(newer), ended_at__lt=cutoff)
        .exclude(state=ReplicationJob.State.RUNNING)
    )


def old_login_logs(cutoff) -> list[QuerySet]:
    return [AccessLog.objects.filter(attempt_time__lt=cutoff), AccessFailureLog.objects.filter(attempt_time__lt=cutoff)]


def delete_in_batches(queryset: QuerySet, batch: int = BATCH) -> int:
    """Delete the queryset's rows `batch` at a time; the conditions are checked again at each delete."""
    model = queryset.model
    total = 0
    while ids := list(queryset.order_by().values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            total += queryset.filter(pk__in=ids).delete()[1].get(model._meta.label, 0)
    return total


def prune(now=None) -> dict[str, int]:
    """Delete what is older than its retention; return how many rows of each kind went."""
    now = now or timezone.now()
    kinds = {
        "events": (settings.RETENTION_EVENTS_DAYS, lambda cutoff: [old_events(cutoff)]),
        "incidents": (settings.RETENTION_EVENTS_DAYS, lambda cutoff: [old_incidents(cutoff)]),
        "deliveries": (settings.RETENTION_DELIVERIES_DAYS, lambda cutoff: [old_deliveries(cutoff)]),
        "replication_jobs": (settings.RETENTION_REPLICATION_JOBS_DAYS, lambda cutoff: [old_replication_jobs(cutoff)]),
        "login_logs": (settings.RETENTION_LOGIN_LOGS_DAYS, old_login_logs),
    }
    deleted = {}
    for kind, (days, querysets) in kinds.items():
        if days <= 0:
            continue
        deleted[kind] = sum(delete_in_batches(qs) for qs in querysets(now - timedelta(days=days)))
    log.info("retention: deleted %s", deleted)
    return deleted
