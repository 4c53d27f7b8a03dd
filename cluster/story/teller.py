"""The telling: an incident's rows in, its `Story` out, every step in time order with its offset
from the first, the headline and the summary, the events it links. Pure (no database), so that it is
tested without agents; the opening (detection.py), the recorded steps (recorded.py) and the outage
(outage.py) are told by their own modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.choices import FAILURE_OF, RECOVERY_OF, EventType
from alerts.models import Event
from dms_admin.moments import clock, duration

from ..choices import IncidentOutcome, StepKind
from ..models import Incident, IncidentStep, ReplicationJob
from .detection import detection_steps
from .model import CAUSES, SWITCHOVER, Names, Outage, Step, Story, StoryEvent, names_of
from .outage import outage_of
from .recorded import resync_steps, step_words
from .words import clause, readable

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tell(incident: Incident, steps: list[IncidentStep], events: dict[int, Event], jobs: list[ReplicationJob]) -> Story:
    """The story of `incident`, from its recorded `steps` (oldest first), the `events` they and the
    incident name (by id) and the resync `jobs` that ran during it."""
    names = names_of(incident)

    def event(event_id: int | None) -> StoryEvent | None:
        known = events.get(event_id) if event_id else None
        return _story_event(known) if known is not None else None

    told = detection_steps(incident, names, event(incident.failure_event_id))
    told += [_recorded(step, steps[:index], names, event(step.event_id)) for index, step in enumerate(steps)]
    told += [step for job in jobs for step in resync_steps(job)]
    told.sort(key=lambda step: step.at)  # stable: steps of the same moment keep the order they were told in
    for step in told:  # between the times as shown, to the millisecond
        step.offset_s = (_ms(step.at) - _ms(told[0].at)) / 1000
    outage = outage_of(incident, steps, names)
    state = incident.outcome or "in_progress"
    state_label = IncidentOutcome(incident.outcome).label if incident.outcome else "In progress"
    linked = [event(event_id) for event_id in dict.fromkeys([incident.failure_event_id, *(s.event_id for s in steps)])]
    return Story(
        incident=incident,
        kind=SWITCHOVER if incident.cause == SWITCHOVER else "failover",
        title=_title(incident, steps, names),
        state=state,
        state_label=state_label,
        summary=_summary(incident, steps, outage, names),
        outage=outage,
        steps=told,
        events=sorted((e for e in linked if e is not None), key=lambda e: (e.at, e.id)),
        cause_label=CAUSES.get(incident.cause, incident.cause.replace("_", " ")),
    )


def _recorded(row: IncidentStep, before: list[IncidentStep], names: Names, event: StoryEvent | None) -> Step:
    facts = row.facts or {}
    title, words = step_words(row.kind, facts, before, row.at, names)
    return Step(row.kind, title, row.at, row.actor, words, event, readable(facts))


def _story_event(event: Event) -> StoryEvent:
    return StoryEvent(event.pk, event.type, EventType(event.type).label, _event_role(event.type), event.created_at)


def _event_role(event_type: str) -> str:
    if event_type in RECOVERY_OF:
        return "failure"
    if event_type in FAILURE_OF:
        return "recovery"
    return "failover"


def _ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch, cut as `clock` and `iso` cut them."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _title(incident: Incident, steps: list[IncidentStep], names: Names) -> str:
    what = "Switchover" if incident.cause == SWITCHOVER else "Failover"
    if any(step.kind == StepKind.COMMITTED for step in steps):
        return f"{what} of {names.cluster}: {names.new} took over from {names.old}"
    return f"{what} of {names.cluster}: {names.old} → {names.new}"


def _summary(incident: Incident, steps: list[IncidentStep], outage: Outage | None, names: Names) -> str:
    cause = CAUSES.get(incident.cause, incident.cause)
    committed = next((step for step in steps if step.kind == StepKind.COMMITTED), None)
    ended = next((step for step in reversed(steps) if step.kind in (StepKind.ABANDONED, StepKind.FAILED)), None)
    if committed is None:
        reason = clause(ended.facts.get("reason")) if ended is not None else ""
        if ended is not None and incident.outcome:
            return f"{StepKind(ended.kind).label} after {cause}: {reason}"
        if ended is not None:
            return f"Failed after {cause}: {reason} The request is tried again."
        if incident.outcome == IncidentOutcome.SUPERSEDED:
            return f"After {cause}; superseded by a later incident before it ended."
        return f"Failing over after {cause} since {clock(incident.opened_at)}: no new primary yet."
    words = f"{names.new} took over from {names.old} after {cause}"
    if outage is not None:
        words += f"; users were without service for {outage.bound_words} {outage.length}"
    healthy = next((step for step in steps if step.kind == StepKind.HEALTHY), None)
    if healthy is not None:
        first = min([incident.opened_at, *(step.at for step in steps)])
        took = duration((healthy.at - first).total_seconds())
        return words + f". Healthy again at {clock(healthy.at)}, {took} after the first sign."
    if incident.outcome == IncidentOutcome.SUPERSEDED:
        return words + ". A later incident came before the cluster was healthy again."
    return words + f". Running on {names.new} alone until {names.old} is back and resynced."
