"""The steps the workers recorded, in words: each step of the failover (claim, fence, witness,
candidacy, lease wait, promotion, commit, demotion, or its end) and of what followed (the old primary
back, rejoined, healthy), with its evidence in words and units; and the resync jobs that ran."""

from __future__ import annotations

from datetime import datetime

from dms_admin.moments import clock, duration, from_unix, seconds

from ..choices import ClusterState, StepKind
from ..models import IncidentStep, ReplicationJob
from .model import Names, Step
from .words import byte_size, moment_of, sentence


def step_words(kind: str, facts: dict, before: list[IncidentStep], at: datetime, names: Names) -> tuple[str, str]:
    """The title and the evidence in words of a step of `kind` with its `facts`, recorded `at`, after the
    steps `before` it."""
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
        return label, _witness(facts, at, names)
    if kind == StepKind.CANDIDACY:
        last = moment_of(facts.get("secondary_last_grant_at"))
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
        return label, _wait(facts, names.old)
    if kind == StepKind.PROMOTED:
        if facts.get("found_promoted"):
            return label, (
                f"{facts.get('server', names.new)} was found primary at epoch {facts.get('epoch')} already: the "
                "worker before promoted it."
            )
        sent, answered = moment_of(facts.get("sent_at")), moment_of(facts.get("answered_at"))
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
            f"{sentence(facts.get('reason'))} The candidate is secondary again and grants resume at the old epoch."
        )
    if kind == StepKind.FAILED:
        retry = facts.get("retry_in_s")
        then = f"the request stands and is tried again in {seconds(retry, 1)}." if retry else "the request is dropped."
        return label, f"{sentence(facts.get('reason'))} The candidate is secondary again; {then}"
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


def _witness(facts: dict, at: datetime, names: Names) -> str:
    secondary, old = facts.get("secondary", names.new), names.old
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
    return f"{secondary} heard {old} only {seconds(age)} before{when}, under {seconds(needed, 1)}: the primary lives."


def _wait(facts: dict, old: str) -> str:
    if facts.get("ended_by_demotion"):
        return f"Ended at once: {old} acknowledged its demotion, so it holds no lease."
    deadline = moment_of(facts.get("lease_deadline_at"))
    control_plane, secondary = (
        moment_of(facts.get("control_plane_last_grant_at")),
        moment_of(facts.get("secondary_last_grant_at")),
    )
    grants = [(at, who) for at, who in ((control_plane, "the control plane"), (secondary, "the secondary")) if at]
    last = max(grants) if grants else None
    waited = facts.get("waited_s") or 0.0
    since = f"its last grant at {clock(last[0])} (by {last[1]}) + " if last else "the fence's reload + "
    terms = (
        f"lease {seconds(facts.get('lease_s') or 0)} + grant delay {seconds(facts.get('max_grant_delay') or 0)} + "
        f"clock skew {seconds(facts.get('max_clock_skew') or 0)}"
    )
    waited_words = f"waited {seconds(waited)}" if waited >= 0.001 else "already over when the wait began: waited 0 s"
    return f"The lease of {old} ran out at {clock(deadline) if deadline else '?'}: {since}{terms}; {waited_words}."


def resync_steps(job: ReplicationJob) -> list[Step]:
    """A resync job that ran during the incident: its start and, once over, its end."""
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
            f"{job.files_done} files ({byte_size(job.bytes_done)}) copied, {job.quarantined} quarantined, "
            f"{job.deleted} deleted, in {took}."
        )
    else:
        title = f"Resync {job.get_state_display().lower()}"
        words = f"{sentence(job.error or job.get_state_display())} The next job resumes it."
    return steps + [Step(StepKind.RESYNC_FINISHED, title, job.finished_at, who, words)]
