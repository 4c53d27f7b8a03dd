"""What a story is made of: the `Story` of an incident, its `Step`s, the `StoryEvent`s it links, the
`Outage` users saw, and the `Names` it calls the cluster and the appliances by; with the causes in
words. Plain data: the telling (teller.py) and the outage (outage.py) fill it, the pages and the API
show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from dms_admin.moments import clock, seconds, stamp

from ..choices import StepKind
from ..models import Incident

SWITCHOVER = "switchover"
MISSED_HEARTBEATS = "missed_heartbeats"
MILESTONES = {
    StepKind.LAST_ANSWER,
    StepKind.FAILURE,
    StepKind.PROMOTED,
    StepKind.ABANDONED,
    StepKind.FAILED,
    StepKind.HEALTHY,
}
CAUSES = {
    MISSED_HEARTBEATS: "missed heartbeats",
    "critical_service": "a failed critical service",
    "clock_skew": "a skewed clock",
    "agents_disagree": "a primary that no longer holds its role",
    "not_serving": "a primary that served nobody",
    SWITCHOVER: "an operator's switchover",
}


@dataclass(frozen=True)
class StoryEvent:
    id: int
    type: str
    label: str
    role: str  # "failure", "failover" or "recovery"
    at: datetime


@dataclass
class Step:
    kind: str
    title: str
    at: datetime
    actor: str
    evidence: str
    event: StoryEvent | None = None
    facts: dict = field(default_factory=dict)
    offset_s: float = 0.0  # from the story's first step

    @property
    def time(self) -> str:
        return clock(self.at)

    @property
    def since(self) -> str:
        return f"+{self.offset_s:.3f} s"

    @property
    def milestone(self) -> bool:
        """A turn of the story: the old primary's last answer, the failure, the new primary serving,
        the end."""
        return self.kind in MILESTONES


@dataclass(frozen=True)
class Outage:
    """How long users were without service: from `start` (the old primary's last moment known to
    serve) to `end` (the new primary serving). `bound` says which way the truth may differ."""

    seconds: float
    start: datetime
    end: datetime
    bound: str  # "at_most" or "at_least"
    start_basis: str
    end_basis: str
    derivation: str

    @property
    def length(self) -> str:
        return seconds(self.seconds)

    @property
    def bound_words(self) -> str:
        return "at most" if self.bound == "at_most" else "at least"


@dataclass
class Story:
    incident: Incident
    kind: str  # "failover" or "switchover"
    title: str
    state: str  # an IncidentOutcome value, or "in_progress"
    state_label: str
    summary: str
    outage: Outage | None
    steps: list[Step]
    events: list[StoryEvent]
    cause_label: str = ""

    @property
    def started(self) -> str:
        return stamp(self.steps[0].at) if self.steps else stamp(self.incident.opened_at)

    @property
    def time_zone(self) -> str:
        return timezone.get_current_timezone_name()


@dataclass(frozen=True)
class Names:
    cluster: str
    old: str
    new: str


def names_of(incident: Incident) -> Names:
    def name(server) -> str:
        return server.name if server is not None else "the appliance (deleted)"

    return Names(incident.cluster.name, name(incident.old_primary), name(incident.new_primary))
