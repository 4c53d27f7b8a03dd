"""An incident told as one story, from its first sign to the cluster healthy again: the last answer
from the primary, each missed slot, the failure, the request, then what the failover worker did
(claim, fence, witness, candidacy, lease wait, promotion, commit, demotion of the old primary) and
what followed (the old primary back, rejoined, resynced, healthy). Each step has its time to the
millisecond, who or what decided, and the evidence in words and units; the story says how long users
were without service and how that is derived, and names the events it raised.

`tell` is pure: rows in (an incident, its steps, its events and resync jobs), a `Story` out, so it is
tested without agents. `story_of` and `story_for_event` read the rows it needs (four queries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from alerts.choices import FAILURE_OF, RECOVERY_OF, EventType
from alerts.models import Event
from dms_admin.moments import clock, duration, from_unix, iso, seconds, stamp

from .choices import ClusterState, IncidentOutcome, StepKind
from .models import Incident, IncidentStep, ReplicationJob

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SWITCHOVER = "switchover"
MISSED_HEARTBEATS = "missed_heartbeats"
HEARTBEAT_WORKER = "heartbeat worker"
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


# -- telling ---------------------------------------------------------------------------------------


def tell(incident: Incident, steps: list[IncidentStep], events: dict[int, Event], jobs: list[ReplicationJob]) -> Story:
    """The story of `incident`, from its recorded `steps` (oldest first), the `events` they and the
    incident name (by id) and the resync `jobs` that ran during it."""
    teller = _Teller(incident, events)
    told = teller.detection() + [teller.recorded(step, steps[:index]) for index, step in enumerate(steps)]
    told += [step for job in jobs for step in teller.resync(job)]
    told.sort(key=lambda step: step.at)  # stable: steps of the same moment keep the order they were told in
    for step in told:  # between the times as shown, to the millisecond
        step.offset_s = (_ms(step.at) - _ms(told[0].at)) / 1000
    outage = outage_of(incident, steps, teller.names)
    state = incident.outcome or "in_progress"
    state_label = IncidentOutcome(incident.outcome).label if incident.outcome else "In progress"
    return Story(
        incident=incident,
        kind=SWITCHOVER if incident.cause == SWITCHOVER else "failover",
        title=teller.title(steps),
        state=state,
        state_label=state_label,
        summary=teller.summary(steps, outage),
        outage=outage,
        steps=told,
        events=teller.events([incident.failure_event_id, *(step.event_id for step in steps)]),
        cause_label=CAUSES.get(incident.cause, incident.cause.replace("_", " ")),
    )


@dataclass(frozen=True)
class Names:
    cluster: str
    old: str
    new: str


def _names(incident: Incident) -> Names:
    def name(server) -> str:
        return server.name if server is not None else "the appliance (deleted)"

    return Names(incident.cluster.name, name(incident.old_primary), name(incident.new_primary))


def _ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch, cut as `clock` and `iso` cut them."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _at(value: Any) -> datetime | None:
    return from_unix(float(value)) if isinstance(value, (int, float)) and value > 0 else None


def _event_role(event_type: str) -> str:
    if event_type in RECOVERY_OF:
        return "failure"
    if event_type in FAILURE_OF:
        return "recovery"
    return "failover"


class _Teller:
    def __init__(self, incident: Incident, events: dict[int, Event]):
        self.incident = incident
        self.detection_facts = incident.detection or {}
        self.evidence = self.detection_facts.get("evidence") or {}
        self.names = _names(incident)
        self.known_events = events

    def event(self, event_id: int | None) -> StoryEvent | None:
        event = self.known_events.get(event_id) if event_id else None
        if event is None:
            return None
        return StoryEvent(event.pk, event.type, EventType(event.type).label, _event_role(event.type), event.created_at)

    def events(self, ids: list[int | None]) -> list[StoryEvent]:
        told = [self.event(event_id) for event_id in dict.fromkeys(ids) if event_id]
        return sorted((e for e in told if e is not None), key=lambda e: (e.at, e.id))

    # -- what was seen before the claim (the request) ----------------------------------------------
    def detection(self) -> list[Step]:
        request, names = self.detection_facts, self.names
        requested_at = _at(request.get("requested_at")) or self.incident.opened_at
        if self.incident.cause == SWITCHOVER:
            who = request.get("requested_by")
            return [
                Step(
                    StepKind.REQUESTED,
                    "Switchover requested",
                    requested_at,
                    f"operator {who}" if who else "an operator",
                    f"A planned switchover: {names.old} hands the primary role to {names.new}. The preflight found "
                    "both appliances up and replication current.",
                )
            ]
        observer = str(request.get("detected_by") or HEARTBEAT_WORKER)
        steps = self._missed(observer) if self.incident.cause == MISSED_HEARTBEATS else []
        failure = self.event(self.incident.failure_event_id)
        if failure is not None:
            steps.append(
                Step(StepKind.FAILURE, failure.label, failure.at, observer, self._failure_words(), event=failure)
            )
        steps.append(
            Step(
                StepKind.REQUESTED,
                "Failover requested",
                requested_at,
                observer,
                f"Cause: {CAUSES.get(self.incident.cause, self.incident.cause)}. The request is written ahead on the "
                f"cluster row (epoch {self.incident.from_epoch}, primary {names.old}) and the failover task queued.",
            )
        )
        return steps

    def _missed(self, observer: str) -> list[Step]:
        evidence, old = self.evidence, self.names.old
        steps = []
        last_answer = _at(evidence.get("last_answer_at"))
        if last_answer is not None:
            steps.append(
                Step(
                    StepKind.LAST_ANSWER,
                    StepKind.LAST_ANSWER.label,
                    last_answer,
                    observer,
                    f"{old} answered the heartbeat slot of {clock(last_answer)}: the last moment the control plane "
                    "knows it served.",
                )
            )
        slots = _missed_slots(evidence)
        errors = [
            f"{url} URL: {error}"
            for url, error in (
                ("heartbeat", evidence.get("heartbeat_error")),
                ("intranet", evidence.get("intranet_error")),
            )
            if error
        ]
        for number, slot in enumerate(slots, start=1):
            since = f", {seconds((slot - last_answer).total_seconds(), 1)} after its last answer" if last_answer else ""
            why = f" ({'; '.join(errors)})" if errors and number == len(slots) else ""
            steps.append(
                Step(
                    StepKind.MISSED,
                    f"Missed heartbeat {number} of {len(slots)}",
                    slot,
                    observer,
                    f"No answer from {old} on its heartbeat URL nor on its intranet URL{since}{why}.",
                )
            )
        return steps

    def _failure_words(self) -> str:
        evidence, old, cause = self.evidence, self.names.old, self.incident.cause
        if cause == MISSED_HEARTBEATS:
            misses = evidence.get("missed_slots")
            last_answer, last_slot = _at(evidence.get("last_answer_at")), _at(evidence.get("last_missed_slot_at"))
            over = (
                f" over {seconds((last_slot - last_answer).total_seconds(), 1)} since its last answer"
                if last_answer and last_slot
                else ""
            )
            rule = f" (rule: {evidence['rule']})" if evidence.get("rule") else ""
            return f"{old} marked down: {misses} heartbeats missed in a row{over}{rule}."
        if cause == "critical_service":
            return (
                f"Critical service {evidence.get('service')} failed {evidence.get('consecutive_failures')} checks in "
                f"a row on {old} (rule: {evidence.get('rule')})."
            )
        if cause == "clock_skew" and isinstance(evidence.get("offset_s"), (int, float)):
            limit = seconds(evidence.get("limit_s") or 0)
            return (
                f"The clock of {old} is {evidence['offset_s']:+.3f} s off, beyond the {limit} allowed: grants stopped."
            )
        return f"{old} failed."

    # -- what the workers recorded ----------------------------------------------------------------
    def recorded(self, row: IncidentStep, before: list[IncidentStep]) -> Step:
        facts = row.facts or {}
        title, words = self._words(row.kind, facts, before, row.at)
        return Step(row.kind, title, row.at, row.actor, words, self.event(row.event_id), _readable(facts))

    def _words(self, kind: str, facts: dict, before: list[IncidentStep], at: datetime) -> tuple[str, str]:
        names = self.names
        label = StepKind(kind).label if kind in StepKind.values else kind
        if kind == StepKind.CLAIMED:
            epochs = f"epoch {facts.get('epoch')} → {facts.get('pending_epoch')}"
            earlier = [step for step in before if step.kind in (StepKind.CLAIMED, StepKind.FAILED)]
            if earlier and earlier[-1].kind == StepKind.FAILED:
                return "Claimed again", f"The request kept after the failure is tried again: {epochs}."
            if earlier or facts.get("step") not in (None, "", "claimed"):
                return (
                    "Claim taken over",
                    f"The claim of the worker before expired (it stopped): this worker resumes at step "
                    f"“{facts.get('step')}”, {epochs}.",
                )
            return label, (
                f"The failover is this worker's: {epochs}. It renews its claim at every step; another worker takes "
                "over if it stops."
            )
        if kind == StepKind.FENCED:
            return label, (
                f"No grant to an epoch below {facts.get('epoch')} is recorded or sent any more: nothing renews the "
                f"lease of {names.old}."
            )
        if kind == StepKind.WITNESS:
            return label, self._witness(facts, at)
        if kind == StepKind.CANDIDACY:
            last = _at(facts.get("secondary_last_grant_at"))
            granted = (
                f"its last grant to {names.old} left at {clock(last)}, {seconds(facts['last_grant_sent_age_s'])} before"
                if last and isinstance(facts.get("last_grant_sent_age_s"), (int, float))
                else f"it had sent {names.old} no grant"
            )
            return label, (
                f"{facts.get('secondary', names.new)} is candidate (for {seconds(facts.get('deadline_s') or 0, 1)} "
                f"unless promoted): it stopped granting leases; {granted}."
            )
        if kind == StepKind.WAIT:
            return label, self._wait(facts)
        if kind == StepKind.PROMOTED:
            if facts.get("found_promoted"):
                return label, (
                    f"{facts.get('server', names.new)} was found primary at epoch {facts.get('epoch')} already: the "
                    "worker before promoted it."
                )
            sent, answered = _at(facts.get("sent_at")), _at(facts.get("answered_at"))
            rtt = f" (answered in {(answered - sent).total_seconds() * 1000:.0f} ms)" if sent and answered else ""
            return label, (
                f"{facts.get('server', names.new)} accepted primary at epoch {facts.get('epoch')}, naming its "
                f"candidacy, with a first lease of {seconds(facts.get('lease_s') or 0)}: it serves from then"
                f"{rtt}."
            )
        if kind == StepKind.COMMITTED:
            state = ClusterState(facts["state"]).label.lower() if facts.get("state") in ClusterState.values else "?"
            return label, (
                f"Epoch {facts.get('epoch')} in the database: {names.new} primary, {names.old} secondary; the cluster "
                f"is {state}. {seconds(facts.get('duration_s') or 0)} from the claim to the commit."
            )
        if kind == StepKind.DEMOTED:
            server = facts.get("server", names.old)
            if facts.get("ok"):
                return label, f"{server} acknowledged secondary at epoch {facts.get('epoch')}: it stopped serving."
            return "Old primary not reached", (
                f"{server} did not take its demotion to secondary ({facts.get('error') or 'no answer'}): it is made "
                "secondary when it answers again."
            )
        if kind == StepKind.ABANDONED:
            return label, (
                f"{_sentence(facts.get('reason'))} The candidate is secondary again and grants resume at the old epoch."
            )
        if kind == StepKind.FAILED:
            retry = facts.get("retry_in_s")
            then = (
                f"the request stands and is tried again in {seconds(retry, 1)}." if retry else "the request is dropped."
            )
            return label, f"{_sentence(facts.get('reason'))} The candidate is secondary again; {then}"
        if kind == StepKind.LOST:
            return label, f"Another worker owns the failover now: this one stopped at step “{facts.get('step')}”."
        if kind == StepKind.RECOVERED:
            return label, f"{facts.get('server')} answered {facts.get('answers')} heartbeats in a row."
        if kind == StepKind.REJOINED:
            return label, (
                f"{facts.get('server')} is secondary at epoch {facts.get('epoch')}, following {facts.get('primary')}; "
                "it is resynced from the primary before the cluster is healthy."
            )
        if kind == StepKind.HEALTHY:
            if facts.get("switchover"):
                return label, "After a switchover both appliances hold the same data: the cluster is protected at once."
            return label, (
                "Both appliances answer, the heartbeat link is whole and replication is current: the cluster is "
                "protected again."
            )
        return label, ""

    def _witness(self, facts: dict, at: datetime) -> str:
        secondary, old = facts.get("secondary", self.names.new), self.names.old
        needed, age = facts.get("needed_s"), facts.get("last_answer_age_s")
        if needed is None:
            return f"{secondary} answers, passes its critical checks and its clock is in step: it can take over."
        if not isinstance(age, (int, float)):
            return f"{secondary} has not heard {old} since it started: it too finds the primary silent."
        when = f" (at {clock(from_unix(at.timestamp() - age))})"
        if age >= needed:
            return (
                f"{secondary} last heard {old} {seconds(age)} before{when}, at least the {seconds(needed, 1)} the rule "
                "asks: it too finds the primary silent."
            )
        return (
            f"{secondary} heard {old} only {seconds(age)} before{when}, under {seconds(needed, 1)}: the primary lives."
        )

    def _wait(self, facts: dict) -> str:
        old = self.names.old
        if facts.get("ended_by_demotion"):
            return f"Ended at once: {old} acknowledged its demotion, so it holds no lease."
        deadline = _at(facts.get("lease_deadline_at"))
        control_plane, secondary = (
            _at(facts.get("control_plane_last_grant_at")),
            _at(facts.get("secondary_last_grant_at")),
        )
        grants = [(at, who) for at, who in ((control_plane, "the control plane"), (secondary, "the secondary")) if at]
        last = max(grants) if grants else None
        waited = facts.get("waited_s") or 0.0
        since = f"its last grant at {clock(last[0])} (by {last[1]}) + " if last else "the fence's reload + "
        terms = (
            f"lease {seconds(facts.get('lease_s') or 0)} + grant delay {seconds(facts.get('max_grant_delay') or 0)} + "
            f"clock skew {seconds(facts.get('max_clock_skew') or 0)}"
        )
        waited_words = (
            f"waited {seconds(waited)}" if waited >= 0.001 else "already over when the wait began: waited 0 s"
        )
        return f"The lease of {old} ran out at {clock(deadline) if deadline else '?'}: {since}{terms}; {waited_words}."

    # -- the resync after a failover --------------------------------------------------------------
    def resync(self, job: ReplicationJob) -> list[Step]:
        who = f"replication job #{job.pk}"
        target = job.target.name if job.target else "the secondary"
        source = job.source.name if job.source else "the primary"
        steps = [
            Step(
                StepKind.RESYNC_STARTED,
                StepKind.RESYNC_STARTED.label,
                job.started_at,
                who,
                f"{target} pulls the data of {source} over the heartbeat network; files only it holds are moved to "
                "its quarantine folder, never lost.",
            )
        ]
        if job.finished_at is None:
            return steps
        took = duration((job.finished_at - job.started_at).total_seconds())
        if job.state == ReplicationJob.State.SUCCEEDED:
            title = "Resync completed"
            words = (
                f"{job.files_done} files ({_bytes(job.bytes_done)}) copied, {job.quarantined} quarantined, "
                f"{job.deleted} deleted, in {took}."
            )
        else:
            title = f"Resync {job.get_state_display().lower()}"
            words = f"{_sentence(job.error or job.get_state_display())} The next job resumes it."
        return steps + [Step(StepKind.RESYNC_FINISHED, title, job.finished_at, who, words)]

    # -- the headline ---------------------------------------------------------------------------
    def title(self, steps: list[IncidentStep]) -> str:
        names = self.names
        what = "Switchover" if self.incident.cause == SWITCHOVER else "Failover"
        if any(step.kind == StepKind.COMMITTED for step in steps):
            return f"{what} of {names.cluster}: {names.new} took over from {names.old}"
        return f"{what} of {names.cluster}: {names.old} → {names.new}"

    def summary(self, steps: list[IncidentStep], outage: Outage | None) -> str:
        names, incident = self.names, self.incident
        cause = CAUSES.get(incident.cause, incident.cause)
        committed = next((step for step in steps if step.kind == StepKind.COMMITTED), None)
        ended = next((step for step in reversed(steps) if step.kind in (StepKind.ABANDONED, StepKind.FAILED)), None)
        if committed is None:
            reason = _clause(ended.facts.get("reason")) if ended is not None else ""
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


def _missed_slots(evidence: dict) -> list[datetime]:
    """Each missed slot: consecutive slots from the first to the last missed one, or only those two
    when the count says some slots were not probed at all (a stale batch)."""
    first, last = evidence.get("first_missed_slot_at"), evidence.get("last_missed_slot_at")
    count, interval = evidence.get("missed_slots") or 0, evidence.get("interval_s") or 0
    if not isinstance(first, (int, float)) or not count:
        return []
    if not isinstance(last, (int, float)) or last <= first:
        return [from_unix(first)]
    if interval and round((last - first) / interval) + 1 == count:
        return [from_unix(first + k * interval) for k in range(count)]
    return [from_unix(first), from_unix(last)]


def _clause(text: Any) -> str:
    """`text` ending with a full stop."""
    text = str(text or "").strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _sentence(text: Any) -> str:
    """`text` as a sentence: a capital first, a full stop last."""
    text = _clause(text)
    return text[:1].upper() + text[1:]


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _readable(facts: dict) -> dict:
    """The facts for the API: Unix times (keys ending in `_at`) as ISO 8601 with milliseconds."""
    readable = {}
    for key, value in facts.items():
        at = _at(value) if key.endswith("_at") else None
        readable[key] = iso(at) if at else value
    return readable


# -- the outage ------------------------------------------------------------------------------------


def outage_of(incident: Incident, steps: list[IncidentStep], names: Names | None = None) -> Outage | None:
    """How long users were without service, or None before a new primary serves (or when the story
    lacks the moment the old primary was last known to serve).

    The end is when the new primary acknowledged its promotion: it took its first lease, and served,
    before answering. The start depends on the cause:
    - missed heartbeats: the later of the last heartbeat the old primary answered to the control
      plane and the last one the secondary heard from it. It may have served on a little (until it
      died, at most until its lease ran out), so the outage is *at most* this long.
    - switchover: when the old primary was sent its demotion (it stops serving as it takes it): at most.
    - any other cause: when the failure was detected; the old primary may have stopped serving
      before (a critical service down for N checks), so *at least*.
    """
    names = names or _names(incident)
    promoted = next((step for step in reversed(steps) if step.kind == StepKind.PROMOTED), None)
    if promoted is None:
        return None
    end = _at(promoted.facts.get("answered_at")) or promoted.at
    end_basis = f"{names.new} acknowledged its promotion with its first lease, serving from then"
    detection = incident.detection or {}
    if incident.cause == MISSED_HEARTBEATS:
        return _outage_after_silence(incident, steps, names, end, end_basis)
    if incident.cause == SWITCHOVER:
        demoted = next((s for s in steps if s.kind == StepKind.DEMOTED and s.facts.get("ok") and s.at <= end), None)
        start = _at(demoted.facts.get("sent_at")) if demoted else None
        if start is None:
            return None
        basis = f"{names.old} was sent its demotion (it stops serving as it takes it)"
        return _outage(start, end, "at_most", basis, end_basis, "")
    start = _at(detection.get("requested_at"))
    if start is None:
        return None
    basis = "the failure was detected"
    note = f"{names.old} may have stopped serving before it was detected, so the outage may have been longer."
    return _outage(start, end, "at_least", basis, end_basis, note)


def _outage_after_silence(incident, steps, names: Names, end: datetime, end_basis: str) -> Outage | None:
    evidence = (incident.detection or {}).get("evidence") or {}
    candidates = [(_at(evidence.get("last_answer_at")), "the control plane")]
    witness = next((s for s in steps if s.kind == StepKind.WITNESS), None)
    age = (witness.facts or {}).get("last_answer_age_s") if witness else None
    if witness is not None and isinstance(age, (int, float)):
        candidates.append((from_unix(witness.at.timestamp() - age), names.new))
    heard = [(at, whom) for at, whom in candidates if at is not None]
    if not heard:
        return None
    start, whom = max(heard, key=lambda pair: pair[0])
    basis = f"{names.old} last answered a heartbeat (to {whom}), the last moment it is known to have served"
    note = _after_its_last_answer(evidence, steps, names.old, start, end)
    return _outage(start, end, "at_most", basis, end_basis, note)


def _after_its_last_answer(evidence: dict, steps, old: str, start: datetime, end: datetime) -> str:
    """How much shorter the outage may have been: a crashed primary stopped before the first slot it
    missed; one cut off from the network served until its lease ran out."""
    notes = []
    missed = _at(evidence.get("first_missed_slot_at"))
    if missed is not None and start < missed < end:
        notes.append(
            f"if it crashed, it stopped before the heartbeat of {clock(missed)}, which it missed, and the outage "
            f"was at least {seconds((end - missed).total_seconds())}"
        )
    wait = next((s for s in steps if s.kind == StepKind.WAIT and s.facts.get("lease_deadline_at")), None)
    lease_end = _at(wait.facts["lease_deadline_at"]) if wait else None
    if lease_end is not None:
        cut = f"if it was only cut off, it served until its lease ran out at {clock(lease_end)} at the latest"
        if lease_end < end:
            cut += f", and the outage was {seconds((end - lease_end).total_seconds())}"
        notes.append(cut)
    if not notes:
        return ""
    return f"{old} may have served on after its last answer: " + "; ".join(notes) + "."


def _outage(start: datetime, end: datetime, bound: str, start_basis: str, end_basis: str, note: str) -> Outage:
    length = max(0.0, (end - start).total_seconds())
    derivation = (
        f"From {clock(start)}, when {start_basis}, to {clock(end)}, when {end_basis}: {seconds(length)}. {note}"
    ).strip()
    return Outage(round(length, 3), start, end, bound, start_basis, end_basis, derivation)


# -- reading the rows ------------------------------------------------------------------------------

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
