"""Recording events. An event is the outbox: it is written in the transaction that changes state,
together with the deliveries it needs, and whatever is sent about it is sent from those stored rows
after the commit (DESIGN §4.5)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from . import delivery as outbox
from .choices import FAILURE_OF, SEVERITY_OF, EventType
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
    """Store one event and its deliveries. Call it inside the transaction whose change it reports.

    `recovers` is the failure event a recovery closes (`server_recovered` closes a `server_failed`):
    the recovery is then notified to exactly the rules that were notified of that failure
    (DESIGN §7). Left out for a recovery, the newest unrecovered failure of the same pair, cluster
    and server is taken. Delivery tasks are queued only once the transaction commits.
    """
    event_type = EventType(event_type)
    if recovers is not None and FAILURE_OF.get(event_type) != recovers.type:
        raise ValueError(f"a {event_type.value} event cannot recover a {recovers.type} event")
    with transaction.atomic():
        if recovers is None and event_type in FAILURE_OF:
            recovers = (
                Event.objects.filter(
                    type=FAILURE_OF[event_type], cluster=cluster, server=server, recovered_by__isnull=True
                )
                .order_by("-id")
                .first()
            )
        event = Event.objects.create(
            type=event_type,
            severity=SEVERITY_OF[event_type],
            cluster=cluster,
            server=server,
            message=message[:500],
            details=details or {},
            recovers=recovers,
        )
        for delivery in outbox.create_deliveries(event):
            # robust: a broker outage must not undo or break the caller; the sweeper sends it later.
            transaction.on_commit(partial(outbox.enqueue, delivery.pk), robust=True)
    return event
