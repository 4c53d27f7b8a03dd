"""How long users were without service in an incident, and how that is derived: from the old
primary's last moment known to serve to the new primary serving, with the bound ("at most" or "at
least") and the reasoning in words. Its own module because the pages list each incident's outage
without telling the whole story."""

from __future__ import annotations

from datetime import datetime

from dms_admin.moments import clock, from_unix, seconds

from ..choices import StepKind
from ..models import Incident, IncidentStep
from .model import MISSED_HEARTBEATS, SWITCHOVER, Names, Outage, names_of
from .words import moment_of


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
    names = names or names_of(incident)
    promoted = next((step for step in reversed(steps) if step.kind == StepKind.PROMOTED), None)
    if promoted is None:
        return None
    end = moment_of(promoted.facts.get("answered_at")) or promoted.at
    end_basis = f"{names.new} acknowledged its promotion with its first lease, serving from then"
    detection = incident.detection or {}
    if incident.cause == MISSED_HEARTBEATS:
        return _outage_after_silence(incident, steps, names, end, end_basis)
    if incident.cause == SWITCHOVER:
        demoted = next((s for s in steps if s.kind == StepKind.DEMOTED and s.facts.get("ok") and s.at <= end), None)
        start = moment_of(demoted.facts.get("sent_at")) if demoted else None
        if start is None:
            return None
        basis = f"{names.old} was sent its demotion (it stops serving as it takes it)"
        return _outage(start, end, "at_most", basis, end_basis, "")
    start = moment_of(detection.get("requested_at"))
    if start is None:
        return None
    basis = "the failure was detected"
    note = f"{names.old} may have stopped serving before it was detected, so the outage may have been longer."
    return _outage(start, end, "at_least", basis, end_basis, note)


def _outage_after_silence(incident, steps, names: Names, end: datetime, end_basis: str) -> Outage | None:
    evidence = (incident.detection or {}).get("evidence") or {}
    candidates = [(moment_of(evidence.get("last_answer_at")), "the control plane")]
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
    missed = moment_of(evidence.get("first_missed_slot_at"))
    if missed is not None and start < missed < end:
        notes.append(
            f"if it crashed, it stopped before the heartbeat of {clock(missed)}, which it missed, and the outage "
            f"was at least {seconds((end - missed).total_seconds())}"
        )
    wait = next((s for s in steps if s.kind == StepKind.WAIT and s.facts.get("lease_deadline_at")), None)
    lease_end = moment_of(wait.facts["lease_deadline_at"]) if wait else None
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
