"""One worker's claim on a cluster's failover (DESIGN §4a rule 6): who owns the failover, and how far
it got.

The claim is one conditional UPDATE with an owner token; every later write of the pipeline is
conditional on that token (`mine()`): zero rows means another worker owns the failover now, and this
one stops (`Lost`). Each step renews the claim and records the step, never an earlier one, so a
worker that takes over an expired claim resumes where its predecessor was.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from . import failover_rules as rules
from .choices import ClusterState, FailoverStep
from .heartbeat.state import HeartbeatState, owner_key, paused_key
from .models import Cluster


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


class FailoverClaim:
    def __init__(self, cluster_id: int, state: HeartbeatState):
        self.cluster_id = cluster_id
        self.token = uuid.uuid4()
        self.state = state
        self.reached: str = FailoverStep.CLAIMED  # the latest step recorded on the row
        self.claimed_at = 0.0  # wall clock, when the claim was attempted

    def take(self) -> Cluster | None:
        """One conditional UPDATE: a fresh request, or a claim whose owner let it expire (§4a.6)."""
        now = timezone.now()
        self.claimed_at = time.time()
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
        return cluster

    def load(self) -> Cluster:
        return Cluster.objects.select_related("primary", "secondary").get(pk=self.cluster_id)

    def mine(self) -> QuerySet[Cluster]:
        return Cluster.objects.filter(pk=self.cluster_id, claim_token=self.token, state=ClusterState.FAILING_OVER)

    def checkpoint(self, step: str) -> None:
        """Stop here while the test pause key names this step; then renew the claim, or stop."""
        # The pause is read only where settings.FAILOVER_TEST_PAUSES is on (tests): production
        # never pays its query.
        while settings.FAILOVER_TEST_PAUSES and Cluster.objects.filter(pk=self.cluster_id, fault_pause=step).exists():
            # Tests read who stopped where, to kill or stall exactly that worker process.
            self.state.redis.set(paused_key(self.cluster_id), f"{step}:{self.token}:{os.getpid()}", ex=60)
            time.sleep(0.05)
        self.renew(step)
        self.state.redis.set(owner_key(self.cluster_id), f"{step}:{self.token}:{os.getpid()}", ex=60)

    def renew(self, step: str) -> None:
        """Extend the claim and record the step (never an earlier one than recorded), or raise Lost
        when the claim is not ours any more."""
        self.reached = rules.later_step(self.reached, step)
        if not self.mine().update(step=self.reached, claimed_until=timezone.now() + timedelta(seconds=claim_seconds())):
            raise Lost(step)

    @property
    def committed_to_promote(self) -> bool:
        """Past the point of no return: the promotion may have reached the secondary, so the
        failover is completed, never abandoned."""
        return rules.committed_to_promote(self.reached)
