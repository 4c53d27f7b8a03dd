"""Acknowledging events, for the alerts page and the API alike: each event acknowledged is one
audit entry naming the user (an event already acknowledged is left as it is, and not recorded)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit.models import Action
from audit.record import record

from .models import Event


def acknowledge(request, ids: list[int]) -> int:
    """Acknowledge the unacknowledged events among `ids` as `request.user`; returns how many."""
    with transaction.atomic():
        events = list(Event.objects.select_for_update().filter(id__in=ids, acknowledged_at__isnull=True))
        Event.objects.filter(id__in=[e.pk for e in events]).update(
            acknowledged_at=timezone.now(), acknowledged_by=request.user
        )
        for event in events:
            record(request, Action.ACKNOWLEDGED, event, details={"type": event.type, "severity": event.severity})
    return len(events)
