"""The failover pipeline (DESIGN §4a rules 5–11): one pipeline for missed heartbeats, a failed
critical service, a skewed primary clock and a planned switchover.

request (write-ahead, by the probe or the API) → claim with an owner token (fence raised) →
second witness → candidacy → lease wait (ended early by an acknowledged demotion) → promote by
candidacy id → commit under the token → best-effort demotion of the old primary.

Every write after the claim is conditional on the claim token: zero rows means another worker owns
the failover now, and this one stops (`Lost`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from alerts.choices import EventType
from alerts.events import record_event

from . import failover_rules as rules
from . import metrics
from .choices import ClusterState, FailoverStep, IncidentOutcome, Role, ServerState, StepKind
from .heartbeat_state import PREFIX, HeartbeatState
from .incident_log import IncidentLog, new_incident_id
from .incidents import Incidents
from .models import Cluster, Server
from .role_commands import RoleCommand, probe, send_role

log = logging.getLogger(__name__)


class Lost(Exception):
    """Another worker owns this failover now."""


class Failed(Exception):
    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}


class Abandoned(Failed):
    pass


def claim_seconds() -> float:
    """How long a claim lasts unless renewed. Every step renews it, and a role command renews it
    before each attempt, so the longest stretch without a renewal is one attempt (2 s) and its
    backoff (≤ 1 s): the claim must outlast that, or a live worker is overtaken mid-step."""
    return float(getattr(settings, "FAILOVER_CLAIM_S", 5.0))


# A lease wait with more than this left writes the steps so far while it waits (incident_log.py).
FLUSH_DURING_WAIT_S = 0.5

# The decisions live in failover_rules (pure, shared with the protocol model in tests/model/).
STEPS = list(rules.STEPS)  # in pipeline order
later_step = rules.later_step
disagreement = rules.disagreement
failing_critical_services = rules.failing_critical_services
AUTOMATIC = rules.AUTOMATIC


class Failover:
    def __init__(self, cluster_id: int, state: HeartbeatState | None = None):
        self.cluster_id = cluster_id
        self.token = uuid.uuid4()
        self.state = state or HeartbeatState()
        self.started = time.monotonic()
        self.evidence: dict = {}
        self.reached: str = FailoverStep.CLAIMED  # the latest step recorded on the row
        self.story = IncidentLog(cluster_id)  # the steps as they happen, for the incident's story

    # -- ownership --------------------------------------------------------------------------------
    def claim(self) -> Cluster | None:
        """One conditional UPDATE: a fresh request, or a claim whose owner let it expire (§4a.6)."""
        now = timezone.now()
        claimed_at = time.time()
        fresh = Q(failover_request__isnull=False) & ~Q(state=ClusterState.FAILING_OVER)
        fresh &= Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)  # backoff after a failure
        expired = Q(state=ClusterState.FAILING_OVER, claimed_until__lt=now)
        claimed = (
            Cluster.objects.filter(pk=self.cluster_id)
            .filter(fresh | expired)
            .update(
                state=ClusterState.FAILING_OVER,
                # Above the database's epoch and any epoch an agent was seen to hold: never reused.
                pending_epoch=rules.pending_epoch(F("epoch"), F("epoch_floor"), Greatest),
                grant_fence_epoch=rules.pending_epoch(F("epoch"), F("epoch_floor"), Greatest),
                claim_token=self.token,
                candidacy_id=uuid.uuid4(),
                # A takeover resumes the step its predecessor recorded, never an earlier one.
                step=Case(When(step="", then=Value(FailoverStep.CLAIMED)), default=F("step")),
                claimed_until=now + timedelta(seconds=claim_seconds()),
            )
        )
        if not claimed:
            return None
        cluster = self.load()
        self.reached = cluster.step
        # Grants stop now: the fence is raised in Redis too, where every grant is recorded (§4a.3).
        self.state.set_fence(cluster.pk, cluster.grant_fence_epoch)
        self.story.begin(cluster)
        self.story.step(
            StepKind.CLAIMED, at=claimed_at, step=cluster.step, epoch=cluster.epoch, pending_epoch=cluster.pending_epoch
        )
        self.story.step(StepKind.FENCED, epoch=cluster.grant_fence_epoch)
        log.info("failover of %s claimed by %s (step %s)", cluster.name, self.token, cluster.step)
        return cluster

    def load(self) -> Cluster:
        return Cluster.objects.select_related("primary", "secondary").get(pk=self.cluster_id)

    def mine(self):
        return Cluster.objects.filter(pk=self.cluster_id, claim_token=self.token, state=ClusterState.FAILING_OVER)

    def checkpoint(self, step: str) -> None:
        """Stop here while the test pause key names this step; then renew the claim, or stop."""
        while settings.FAILOVER_TEST_PAUSES and Cluster.objects.filter(pk=self.cluster_id, fault_pause=step).exists():
            # Tests read who stopped where, to kill or stall exactly that worker process.
            self.state.redis.set(f"{PREFIX}paused:{self.cluster_id}", f"{step}:{self.token}:{os.getpid()}", ex=60)
            time.sleep(0.05)
        self.renew(step)
        self.state.redis.set(f"{PREFIX}owner:{self.cluster_id}", f"{step}:{self.token}:{os.getpid()}", ex=60)

    def renew(self, step: str) -> None:
        """Extend the claim and record the step (never an earlier one than recorded), or raise Lost
        when the claim is not ours any more."""
        self.reached = later_step(self.reached, step)
        if not self.mine().update(step=self.reached, claimed_until=timezone.now() + timedelta(seconds=claim_seconds())):
            raise Lost(step)

    @property
    def committed_to_promote(self) -> bool:
        """Past the point of no return: the promotion may have reached the secondary, so the
        failover is completed, never abandoned."""
        return rules.committed_to_promote(self.reached)

    # -- the pipeline -----------------------------------------------------------------------------
    def run(self) -> str:
        cluster = self.claim()
        if cluster is None:
            return "not claimed"
        request = cluster.failover_request or {}
        cause = request.get("cause", "missed_heartbeats")
        if request.get("requested_by"):  # an operator's switchover: its events name who asked
            self.evidence["requested_by"] = request["requested_by"]
        try:
            return self._run(cluster, request, cause)
        finally:
            self.story.flush()

    def _run(self, cluster: Cluster, request: dict, cause: str) -> str:
        try:
            if not rules.request_current(request, cluster.epoch, cluster.primary_id):
                raise Abandoned("the request names an epoch or primary that is no longer current")
            if self.committed_to_promote and self._already_promoted(cluster):
                self.story.step(
                    StepKind.PROMOTED, server=cluster.secondary.name, epoch=cluster.pending_epoch, found_promoted=True
                )
                return self.commit(cluster, cause)
            self.checkpoint(FailoverStep.WITNESS)
            self.cause_stands(cluster, cause)
            self.second_witness(cluster, cause)
            self.checkpoint(FailoverStep.CANDIDACY)
            self.cause_stands(cluster, cause)
            secondary_last_grant = self.candidacy(cluster)
            self.checkpoint(FailoverStep.WAIT)
            self.wait(cluster, cause, secondary_last_grant)
            self.checkpoint(FailoverStep.PROMOTE)
            self.cause_stands(cluster, cause)
            self.promote(cluster)
            self.checkpoint(FailoverStep.COMMIT)
            return self.commit(cluster, cause)
        except Lost:
            self.story.step(StepKind.LOST, step=self.reached)
            log.info("failover of %s: claim %s lost; another worker owns it", cluster.name, self.token)
            return "lost"
        except Abandoned as error:
            self.release(cluster, cause, EventType.FAILOVER_ABANDONED, str(error), error.details, keep_request=False)
            return "abandoned"
        except Failed as error:
            failed = EventType.SWITCHOVER_FAILED if cause == "switchover" else EventType.FAILOVER_FAILED
            self.release(cluster, cause, failed, str(error), error.details, keep_request=cause != "switchover")
            return "failed"

    def second_witness(self, cluster: Cluster, cause: str) -> None:
        """On missed heartbeats the secondary must also find the primary silent (§4a.7)."""
        interval, threshold = cluster.heartbeat_interval, cluster.missed_heartbeats_threshold
        answer = probe(cluster.secondary, cluster.epoch, timeout=min(1.0, interval))
        refusal = rules.witness_refusal(
            cluster.secondary.name,
            answer.answered,
            answer.error,
            failing_critical_services(answer.body) if answer.answered else [],
            answer.answered and int(cluster.secondary_id) in self.state.skewed(),
        )
        if refusal:
            raise Failed(refusal)
        peer = answer.body.get("peer") or {}
        self.evidence["secondary_peer"] = peer
        age = peer.get("last_answer_age_s")
        needed = rules.secondary_still_hears(cause, self.reached, age, threshold, interval)
        self.story.step(
            StepKind.WITNESS,
            at=answer.received_wall,
            secondary=cluster.secondary.name,
            last_answer_age_s=age,
            needed_s=(threshold - 1) * interval if cause == "missed_heartbeats" else None,
        )
        if cause != "missed_heartbeats" or self.committed_to_promote:
            return
        if needed is not None:
            with transaction.atomic():
                Incidents(self.state, cluster.primary_id).open(
                    EventType.HEARTBEAT_LINK_DOWN,
                    f"The control plane lost the primary {cluster.primary.name} of cluster {cluster.name}, but the "
                    f"secondary still hears it ({age:.2f} s ago): no failover.",
                    cluster=cluster,
                    server=cluster.primary,
                    details={"secondary_last_answer_age_s": age, "needed_s": needed},
                )
            raise Abandoned(
                f"the secondary still hears the primary ({age:.2f} s ago, under {needed:g} s)",
                {"secondary_last_answer_age_s": age},
            )
        self._abandon_if_primary_back(cluster, cause)

    def candidacy(self, cluster: Cluster) -> float:
        """The secondary stops granting and says when it last granted (§4a.8). Returns that moment."""
        deadline = rules.candidacy_deadline_s(
            cluster.longest_lease_s, cluster.max_grant_delay, cluster.max_clock_skew, claim_seconds()
        )
        command = RoleCommand(
            Role.CANDIDATE,
            cluster.epoch,
            peer=cluster.primary,
            candidacy={"id": str(cluster.candidacy_id), "deadline_s": round(deadline, 3)},
        )
        answer = send_role(
            cluster, cluster.secondary, command, before_attempt=lambda: self.renew(FailoverStep.CANDIDACY)
        )
        if not answer.ok:
            raise Failed(f"the secondary {cluster.secondary.name} refused candidacy: {answer.error or answer.body}")
        age = answer.body.get("last_grant_sent_age_s")
        self.evidence["secondary_last_grant_sent_age_s"] = age
        last_grant = rules.secondary_last_grant(answer.received_wall, age)
        self.story.step(
            StepKind.CANDIDACY,
            at=answer.received_wall,
            secondary=cluster.secondary.name,
            deadline_s=round(deadline, 3),
            last_grant_sent_age_s=age,
            secondary_last_grant_at=last_grant or None,
        )
        return last_grant

    def wait(self, cluster: Cluster, cause: str, secondary_last_grant: float) -> None:
        """Until every lease the old primary may hold has ended (§4a.9)."""
        if cause != "missed_heartbeats" and self._demote_old_primary(cluster):
            self.evidence["wait"] = "ended by the old primary's acknowledged demotion"
            self.story.step(StepKind.WAIT, ended_by_demotion=True)
            return
        started = time.time()
        # The longest lease any granter may still be granting: a settings change that the agents
        # have not acknowledged yet leaves the old lease in force at the secondary.
        while True:
            # A Redis that restarted (even from a snapshot) lost grant records: count from now.
            self.state.ensure_fences({cluster.pk: cluster.grant_fence_epoch})
            identity = self.state.identity()
            # Every bound on Redis's clock, the one all control-plane hosts record grants on: this
            # host's own clock may be off from the heartbeat worker's. The secondary's last grant is
            # an age it measured, placed on this host's clock, then moved onto Redis's.
            offset = self.state.now() - time.time()
            bound = self.state.grant_bound(cluster.pk)
            secondary = secondary_last_grant + offset
            until = rules.lease_deadline(
                bound, secondary, cluster.longest_lease_s, cluster.max_grant_delay, cluster.max_clock_skew
            )
            self.evidence.update(last_grant_at=max(bound, secondary), lease_deadline=until)
            if until - (time.time() + offset) > FLUSH_DURING_WAIT_S:
                self.story.flush()  # while waiting anyway: a successor then tells what this worker did
            while self.state.now() < until:
                time.sleep(min(0.1, max(0.0, until - self.state.now())))
                self.renew(FailoverStep.WAIT)
                if cause == "missed_heartbeats" and not self.committed_to_promote:
                    self._abandon_if_primary_back(cluster, cause)
            if self.state.identity() != identity:
                continue  # Redis restarted during the wait: its records are not to be trusted
            fence = self.state.redis.hget(f"{PREFIX}fence:{cluster.pk}", "epoch")
            fence = None if fence is None else int(fence)
            over = rules.wait_over(fence, cluster.grant_fence_epoch, self.mine().exists())
            if over == "done":
                self.story.step(
                    StepKind.WAIT,
                    started_at=started,
                    waited_s=round(time.time() - started, 3),
                    # On this host's clock, from Redis's, by the offset measured above.
                    control_plane_last_grant_at=bound - offset if bound else None,
                    secondary_last_grant_at=secondary_last_grant or None,
                    lease_deadline_at=until - offset,
                    lease_s=cluster.longest_lease_s,
                    max_grant_delay=cluster.max_grant_delay,
                    max_clock_skew=cluster.max_clock_skew,
                )
                return
            if over == "again":
                continue  # the fence vanished during the wait: wait again from its reload
            raise Lost(FailoverStep.WAIT)

    def promote(self, cluster: Cluster) -> None:
        """`primary` at the pending epoch, naming the candidacy, with its first grant (§4a.10)."""
        pending = cluster.pending_epoch
        assert pending is not None, "the claim sets the pending epoch"
        self.state.set_granting(cluster.pk, True)
        granted: dict = {}  # the last grant sent, for the story

        def fresh_grant() -> dict:  # each attempt's grant stamped and recorded as it leaves
            sent_at = time.time()
            recorded, _ = self.state.record_grant(cluster.pk, pending, sent_at)
            granted.update(lease_s=cluster.effective_lease_s if recorded else 0.0, sent_at=sent_at)
            return dict(granted)

        command = RoleCommand(
            Role.PRIMARY, pending, peer=cluster.primary, candidacy={"id": str(cluster.candidacy_id)},
            fresh_grant=fresh_grant,
        )  # fmt: skip
        answer = send_role(
            cluster, cluster.secondary, command, attempts=5, before_attempt=lambda: self.renew(FailoverStep.PROMOTE)
        )
        if not answer.ok:
            raise Failed(f"the secondary {cluster.secondary.name} refused promotion: {answer.error or answer.body}")
        self.story.step(
            StepKind.PROMOTED,
            at=answer.received_wall,
            server=cluster.secondary.name,
            epoch=pending,
            sent_at=answer.sent_wall,
            answered_at=answer.received_wall,
            lease_s=granted.get("lease_s"),
        )

    def commit(self, cluster: Cluster, cause: str) -> str:
        old_primary, new_primary = cluster.primary, cluster.secondary
        switchover = cause == "switchover"
        now = timezone.now()
        with transaction.atomic():
            committed = self.mine().update(
                epoch=F("pending_epoch"),
                primary=new_primary,
                secondary=old_primary,
                state=ClusterState.HEALTHY if switchover else ClusterState.DEGRADED,
                pending_epoch=None,
                claim_token=None,
                candidacy_id=None,
                step="",
                claimed_until=None,
                failover_request=None,
                last_failover_at=now,
                # The old primary must be resynced from the new one before the cluster is healthy
                # again (DESIGN §5); after a switchover both hold the same data.
                needs_resync=not switchover,
            )
            if not committed:
                raise Lost(FailoverStep.COMMIT)
            Server.objects.filter(pk=new_primary.pk).update(role=Role.PRIMARY)
            if switchover:  # its demotion was acknowledged; a failed primary's role comes from its agent
                Server.objects.filter(pk=old_primary.pk).update(role=Role.SECONDARY)
            cluster.refresh_from_db()
            duration = round(time.monotonic() - self.started, 3)
            event = record_event(
                EventType.SWITCHOVER_COMPLETED if switchover else EventType.FAILOVER_COMPLETED,
                f"{new_primary.name} is now the primary of cluster {cluster.name} (epoch {cluster.epoch}); "
                f"{'planned switchover' if switchover else 'failover after ' + cause.replace('_', ' ')}.",
                cluster=cluster,
                server=new_primary,
                details={
                    "cause": cause,
                    "epoch": cluster.epoch,
                    "old_primary": old_primary.name,
                    "duration_s": duration,
                    **self.evidence,
                },
            )
        self.story.step(
            StepKind.COMMITTED, at=now.timestamp(), event=event, epoch=cluster.epoch, state=cluster.state,
            duration_s=duration,
        )  # fmt: skip
        if switchover:  # both appliances hold the same data: healthy at once
            self.story.step(StepKind.HEALTHY, at=now.timestamp(), switchover=True)
            self.story.close(IncidentOutcome.HEALTHY)
        else:
            self.story.flush()  # the new primary serves: the story may take its time now
        metrics.record_failover("completed", cause, duration)
        if not switchover:
            self._demote_old_primary(cluster, old=old_primary, new=new_primary, epoch=cluster.epoch)
        return "completed"

    # -- clean-up and helpers ---------------------------------------------------------------------
    def release(self, cluster, cause, event_type, message, details, *, keep_request: bool) -> None:
        """Abandon or fail before promotion: candidate back to secondary, fence back (§4a.11)."""
        current = self.load()
        if current.claim_token != self.token:
            return
        if rules.committed_to_promote(later_step(current.step, self.reached)):
            # Past the point of no return: leave the claim to expire; the next worker resumes the
            # promotion (it never moves the step back, never abandons).
            log.warning(
                "failover of %s: promotion not confirmed (%s); a later worker resumes it", cluster.name, message
            )
            return
        send_role(current, current.secondary, RoleCommand(Role.SECONDARY, current.epoch, peer=current.primary))
        backoff = rules.release_backoff_s(int((current.failover_request or {}).get("failures", 0)))
        request = current.failover_request if keep_request else None
        if request is not None:
            request = {**request, "failures": int(request.get("failures", 0)) + 1}
        with transaction.atomic():
            if not self.mine().update(
                state=ClusterState.DEGRADED,
                grant_fence_epoch=F("epoch"),
                pending_epoch=None,
                claim_token=None,
                candidacy_id=None,
                step="",
                claimed_until=timezone.now() + timedelta(seconds=backoff) if keep_request else None,
                failover_request=request,
            ):
                return
            event = record_event(
                event_type,
                f"{event_type.label} for cluster {cluster.name}: {message}.",
                cluster=cluster,
                server=cluster.secondary,
                details={"cause": cause, **self.evidence, **details},
            )
        self.state.set_fence(cluster.pk, current.epoch)
        abandoned = event_type == EventType.FAILOVER_ABANDONED
        self.story.step(
            StepKind.ABANDONED if abandoned else StepKind.FAILED,
            event=event,
            reason=message,
            retry_in_s=backoff if keep_request else None,
        )
        if not keep_request:
            self.story.close(IncidentOutcome.ABANDONED if abandoned else IncidentOutcome.FAILED)
        metrics.record_failover(event_type.value.split("_")[-1], cause)

    def cause_stands(self, cluster: Cluster, cause: str) -> None:
        """Before every side effect: an automatic failover stops (abandoned) when the cluster went
        into maintenance or its cause has gone (a kept request must not fail the cluster over
        later for a fault that has healed). Past the promotion nothing is abandoned."""
        if cause not in AUTOMATIC or self.committed_to_promote:
            return
        maintenance = Cluster.objects.filter(pk=cluster.pk, maintenance=True).exists()
        last: float = 0
        answer = None
        if not maintenance and cause == "missed_heartbeats":
            last = self._primary_last_answer(cluster)
        if not maintenance and cause in rules.PROBED_CAUSES:
            answer = probe(cluster.primary, cluster.epoch)  # a silent primary: the cause stands
        why = rules.cause_gone(
            cause,
            self.reached,
            maintenance=maintenance,
            epoch=cluster.epoch,
            primary_back=rules.primary_back(last, (cluster.failover_request or {}).get("requested_at", 0)),
            primary_skewed=cause != "clock_skew" or int(cluster.primary_id) in self.state.skewed(),
            primary_answer=answer.body if answer is not None and answer.answered else None,
        )
        if why:
            raise Abandoned(why, {"primary_last_answer_at": last} if last and not maintenance else {})

    def _primary_last_answer(self, cluster: Cluster) -> float:
        return self.state.last_answers([cluster.primary_id]).get(cluster.primary_id, 0)

    def _abandon_if_primary_back(self, cluster: Cluster, cause: str) -> None:
        last = self._primary_last_answer(cluster)
        requested = (cluster.failover_request or {}).get("requested_at", 0)
        if rules.primary_back(last, requested):
            raise Abandoned("the primary answers heartbeats again", {"primary_last_answer_at": last})

    def _already_promoted(self, cluster: Cluster) -> bool:
        answer = probe(cluster.secondary, cluster.pending_epoch or cluster.epoch)
        return rules.already_promoted(answer.body, cluster.pending_epoch)

    def _demote_old_primary(self, cluster: Cluster, *, old=None, new=None, epoch=None) -> bool:
        old = old or cluster.primary
        new = new or cluster.secondary
        epoch = epoch or cluster.pending_epoch
        answer = send_role(cluster, old, RoleCommand(Role.SECONDARY, epoch, peer=new), attempts=1, timeout=1.0)
        self.story.step(
            StepKind.DEMOTED,
            at=answer.received_wall or time.time(),
            server=old.name,
            epoch=epoch,
            ok=answer.ok,
            sent_at=answer.sent_wall or None,
            error=answer.error or ("" if answer.ok else str(answer.body.get("error", answer.status))),
        )
        return answer.ok


def preflight_switchover(cluster: Cluster) -> list[str]:
    """Why a planned switchover cannot start now (empty when it can)."""
    reasons = []
    if cluster.state == ClusterState.FAILING_OVER or cluster.failover_request is not None:
        reasons.append("A failover or switchover is already in progress.")
    if cluster.state == ClusterState.SYNCING or not cluster.active:
        reasons.append("The cluster is not active yet: its initial sync has not completed.")
    if cluster.active and not cluster.replication_current():
        reasons.append("Replication is not current: the secondary may lack the primary's latest data.")
    for label, server in (("primary", cluster.primary), ("secondary", cluster.secondary)):
        if server.state != ServerState.UP:
            reasons.append(f"The {label} {server.name} is {server.get_state_display().lower()}.")
    if not reasons:
        answer = probe(cluster.secondary, cluster.epoch)
        if not answer.answered:
            reasons.append(f"The secondary {cluster.secondary.name} does not answer: {answer.error}.")
        else:
            failing = failing_critical_services(answer.body)
            if failing:
                reasons.append(f"Critical services fail on the secondary: {', '.join(failing)}.")
            if answer.body.get("role") != Role.SECONDARY or answer.body.get("epoch") != cluster.epoch:
                reasons.append(
                    f"The secondary's agent is {answer.body.get('role')} at epoch {answer.body.get('epoch')}, "
                    f"not secondary at epoch {cluster.epoch}."
                )
    return reasons


def request_switchover(cluster: Cluster, requested_by: str = "") -> bool:
    request = {
        "cause": "switchover",
        "server_id": cluster.primary_id,
        "seen_epoch": cluster.epoch,
        "requested_at": time.time(),
        "incident": new_incident_id(),
        **({"requested_by": requested_by} if requested_by else {}),
    }
    return bool(
        Cluster.objects.filter(pk=cluster.pk, epoch=cluster.epoch, failover_request__isnull=True)
        .exclude(state=ClusterState.FAILING_OVER)
        .update(failover_request=request, claimed_until=None)
    )
