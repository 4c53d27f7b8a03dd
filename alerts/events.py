"""Recording events. An event is the outbox: it is written in the transaction that changes state,
and whatever is sent about it is sent from the stored row afterwards (DESIGN §4.5)."""

from typing import Any

from .choices import SEVERITY_OF, EventType
from .models import Event


def record_event(
    event_type: EventType | str,
    message: str,
    *,
    cluster: Any = None,
    server: Any = None,
    details: dict | None = None,
    recovers: Event | None = None,
) -> Event:
    """Store one event. Call it inside the transaction whose change the event reports.

    `recovers` is the failure event that a recovery closes (DESIGN §7 pairs them).
    """
    event_type = EventType(event_type)
    return Event.objects.create(
        type=event_type,
        severity=SEVERITY_OF[event_type],
        cluster=cluster,
        server=server,
        message=message[:500],
        details={**(details or {}), **({"recovers_event": recovers.pk} if recovers else {})},
    )
