"""The failover pipeline (DESIGN §4a rules 5–11): one pipeline for missed heartbeats, a failed
critical service, a skewed primary clock and a planned switchover.

request (write-ahead, by the heartbeat evaluation or the operator: cluster/switchover.py) → claim
with an owner token, fence raised (cluster/failover_claim.py) → second witness → candidacy → lease
wait (ended early by an acknowledged demotion) → promote by candidacy id (cluster/failover_steps.py)
→ commit under the token → best-effort demotion of the old primary; or, before the promotion, the
release (abandoned or failed).

Every write after the claim is conditional on the claim token: zero rows means another worker owns
the failover now, and this one stops (`Lost`). Every decision is a pure function of
cluster/failover_rules.py, the ones the protocol model in tests/model/ checks.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts.choices import EventType
from alerts.events import record_event

from . import failover_rules as rules
from . import metrics
from .choices import ClusterState, FailoverStep, IncidentOutcome, Role, StepKind
from .failover_claim import Abandoned, Failed, FailoverClaim, Lost
from .failover_steps import FailoverSteps
from .heartbeat.state import HeartbeatState
from .incident_log import IncidentLog
from .models import Cluster, Server
from .role_commands import RoleCommand, send_role

log = logging.getLogger(__name__)


class Failover:
    """One worker's run of a cluster's failover: `run()` is the Celery task's whole body."""

    def __init__(self, cluster_id: int, state: HeartbeatState | None = None):
        self.cluster_id = cluster_id
        self.started = time.monotonic()
        self.evidence: dict = {}
        self.claim = FailoverClaim(cluster_id, state or HeartbeatState())
        self.state = self.claim.state
        self.story = IncidentLog(cluster_id)  # the steps as they happen, for the incident's story
        self.steps = FailoverSteps(self.claim, self.story, self.evidence)

    def run(self) -> str:
        cluster = self.claim.take()
        if cluster is None:
            return "not claimed"
        self.story.begin(cluster)
        self.story.step(
            StepKind.CLAIMED,
            at=self.claim.claimed_at,
            step=cluster.step,
            epoch=cluster.epoch,
            pending_epoch=cluster.pending_epoch,
        )
        self.story.step(StepKind.FENCED, epoch=cluster.grant_fence_epoch)
        log.info("failover of %s claimed by %s (step %s)", cluster.name, self.claim.token, cluster.step)
        request = cluster.failover_request or {}
        cause = request.get("cause", "missed_heartbeats")
        if request.get("requested_by"):  # an operator's switchover: its events name who asked
            self.evidence["requested_by"] = request["requested_by"]
        try:
            return self._run(cluster, request, cause)
        finally:
            self.story.flush()

    def _run(self, cluster: Cluster, request: dict, cause: str) -> str:
        claim, steps = self.claim, self.steps
        try:
            if not rules.request_current(request, cluster.epoch, cluster.primary_id):
                raise Abandoned("the request names an epoch or primary that is no longer current")
            if claim.committed_to_promote and steps.already_promoted(cluster):
                self.story.step(
                    StepKind.PROMOTED, server=cluster.secondary.name, epoch=cluster.pending_epoch, found_promoted=True
                )
                return self.commit(cluster, cause)
            claim.checkpoint(FailoverStep.WITNESS)
            steps.cause_stands(cluster, cause)
            steps.second_witness(cluster, cause)
            claim.checkpoint(FailoverStep.CANDIDACY)
            steps.cause_stands(cluster, cause)
            secondary_last_grant = steps.candidacy(cluster)
            claim.checkpoint(FailoverStep.WAIT)
            steps.wait(cluster, cause, secondary_last_grant)
            claim.checkpoint(FailoverStep.PROMOTE)
            steps.cause_stands(cluster, cause)
            steps.promote(cluster)
            claim.checkpoint(FailoverStep.COMMIT)
            return self.commit(cluster, cause)
        except Lost:
            self.story.step(StepKind.LOST, step=claim.reached)
            log.info("failover of %s: claim %s lost; another worker owns it", cluster.name, claim.token)
            return "lost"
        except Abandoned as error:
            self.release(cluster, cause, EventType.FAILOVER_ABANDONED, str(error), error.details, keep_request=False)
            return "abandoned"
        except Failed as error:
            failed = EventType.SWITCHOVER_FAILED if cause == "switchover" else EventType.FAILOVER_FAILED
            self.release(cluster, cause, failed, str(error), error.details, keep_request=cause != "switchover")
            return "failed"

    def commit(self, cluster: Cluster, cause: str) -> str:
        old_primary, new_primary = cluster.primary, cluster.secondary
        switchover = cause == "switchover"
        now = timezone.now()
        with transaction.atomic():
            committed = self.claim.mine().update(
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
            self.steps.demote_old_primary(cluster, old=old_primary, new=new_primary, epoch=cluster.epoch)
        return "completed"

    # -- the other end: abandoned or failed before the promotion ----------------------------------
    def release(self, cluster, cause, event_type, message, details, *, keep_request: bool) -> None:
        """Abandon or fail before promotion: candidate back to secondary, fence back (§4a.11)."""
        current = self.claim.load()
        if current.claim_token != self.claim.token:
            return
        if rules.committed_to_promote(rules.later_step(current.step, self.claim.reached)):
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
            if not self.claim.mine().update(
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
