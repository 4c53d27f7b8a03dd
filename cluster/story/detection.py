"""The opening of a story: what was seen before the failover worker claimed the request. For missed
heartbeats the old primary's last answer and each slot it missed, then the failure as detected and
the request written ahead; for a switchover, the operator's request. Told from the incident's
`detection` (the request as written), not from recorded steps."""

from __future__ import annotations

from datetime import datetime

from dms_admin.moments import clock, from_unix, seconds

from ..choices import StepKind
from ..models import Incident
from .model import CAUSES, MISSED_HEARTBEATS, SWITCHOVER, Names, Step, StoryEvent
from .words import moment_of

HEARTBEAT_WORKER = "heartbeat worker"


def detection_steps(incident: Incident, names: Names, failure: StoryEvent | None) -> list[Step]:
    """The steps before the claim, `failure` being the event the failure raised (if known)."""
    request = incident.detection or {}
    requested_at = moment_of(request.get("requested_at")) or incident.opened_at
    if incident.cause == SWITCHOVER:
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
    evidence = request.get("evidence") or {}
    observer = str(request.get("detected_by") or HEARTBEAT_WORKER)
    steps = _missed(evidence, names.old, observer) if incident.cause == MISSED_HEARTBEATS else []
    if failure is not None:
        words = _failure_words(incident.cause, evidence, names.old)
        steps.append(Step(StepKind.FAILURE, failure.label, failure.at, observer, words, event=failure))
    steps.append(
        Step(
            StepKind.REQUESTED,
            "Failover requested",
            requested_at,
            observer,
            f"Cause: {CAUSES.get(incident.cause, incident.cause)}. The request is written ahead on the "
            f"cluster row (epoch {incident.from_epoch}, primary {names.old}) and the failover task queued.",
        )
    )
    return steps


def _missed(evidence: dict, old: str, observer: str) -> list[Step]:
    steps = []
    last_answer = moment_of(evidence.get("last_answer_at"))
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


def _failure_words(cause: str, evidence: dict, old: str) -> str:
    if cause == MISSED_HEARTBEATS:
        misses = evidence.get("missed_slots")
        last_answer = moment_of(evidence.get("last_answer_at"))
        last_slot = moment_of(evidence.get("last_missed_slot_at"))
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
        return f"The clock of {old} is {evidence['offset_s']:+.3f} s off, beyond the {limit} allowed: grants stopped."
    return f"{old} failed."
