"""The story read from the database: an incident's steps, the events they name and the resync jobs
that ran during it (four queries), handed to `tell`; and the incident an event belongs to."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from alerts.models import Event

from ..models import Incident, IncidentStep, ReplicationJob
from .model import Story
from .teller import tell

INCIDENTS = Incident.objects.select_related("cluster", "old_primary", "new_primary")


def story_of(incident: Incident) -> Story:
    """`incident`'s story, read from the database: its steps, events and resync jobs."""
    steps = list(IncidentStep.objects.filter(incident=incident).order_by("at", "id"))
    ids = {incident.failure_event_id, *(step.event_id for step in steps)} - {None}
    events = {event.pk: event for event in Event.objects.filter(pk__in=ids)}
    until = incident.closed_at or timezone.now()
    jobs = list(
        ReplicationJob.objects.filter(
            cluster_id=incident.cluster_id,
            kind=ReplicationJob.Kind.RESYNC,
            started_at__gte=incident.opened_at,
            started_at__lte=until,
        )
        .select_related("source", "target")
        .order_by("id")
    )
    return tell(incident, steps, events, jobs)


def incident_of_event(event_id: int) -> Incident | None:
    """The incident an event belongs to: its failure, or an event one of its steps raised."""
    return INCIDENTS.filter(Q(failure_event_id=event_id) | Q(steps__event_id=event_id)).distinct().first()


def story_for_event(event_id: int) -> Story | None:
    incident = incident_of_event(event_id)
    return story_of(incident) if incident is not None else None
