"""The failover pipeline's middle steps (DESIGN §4a rules 7 to 10): second witness, candidacy, lease
wait, promotion, and the check before each side effect that the cause still stands.

Each step gathers its facts (the agents' answers, Redis's grant records, the row) and asks
cluster/failover_rules.py, the pure decisions that the protocol model checks, what they mean. A
step that must stop raises `Abandoned`, `Failed` or `Lost` (cluster/failover_claim.py); the
pipeline (cluster/failover.py) turns those into the release.
"""

from __future__ import annotations

import time

from django.db import transaction

from alerts.choices import EventType

from . import failover_rules as rules
from .choices import FailoverStep, Role, StepKind
from .failover_claim import Abandoned, Failed, FailoverClaim, Lost, claim_seconds
from .heartbeat.incidents import Incidents
from .heartbeat.state import fence_key
from .incident_log import IncidentLog
from .models import Cluster, Server
from .role_commands import RoleCommand, probe, send_role

# A lease wait with more than this left writes the steps so far while it waits (incident_log.py).
FLUSH_DURING_WAIT_S = 0.5


class FailoverSteps:
    def __init__(self, claim: FailoverClaim, story: IncidentLog, evidence: dict):
        self.claim = claim
        self.state = claim.state
        self.story = story  # the steps as they happen, for the incident's story
        self.evidence = evidence  # what the closing event carries

    def second_witness(self, cluster: Cluster, cause: str) -> None:
        """On missed heartbeats the secondary must also find the primary silent (§4a.7)."""
        interval, threshold = cluster.heartbeat_interval, cluster.missed_heartbeats_threshold
        answer = probe(cluster.secondary, cluster.epoch, timeout=min(1.0, interval))
        refusal = rules.witness_refusal(
            cluster.secondary.name,
            answer.answered,
            answer.error,
            rules.failing_critical_services(answer.body) if answer.answered else [],
            answer.answered and int(cluster.secondary_id) in self.state.skewed(),
        )
        if refusal:
            raise Failed(refusal)
        peer = answer.body.get("peer") or {}
        self.evidence["secondary_peer"] = peer
        age = peer.get("last_answer_age_s")
        needed = rules.secondary_still_hears(cause, self.claim.reached, age, threshold, interval)
        self.story.step(
            StepKind.WITNESS,
            at=answer.received_wall,
            secondary=cluster.secondary.name,
            last_answer_age_s=age,
            needed_s=(threshold - 1) * interval if cause == "missed_heartbeats" else None,
        )
        if cause != "missed_heartbeats" or self.claim.committed_to_promote:
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
        self.abandon_if_primary_back(cluster)

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
            cluster, cluster.secondary, command, before_attempt=lambda: self.claim.renew(FailoverStep.CANDIDACY)
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
        if cause != "missed_heartbeats" and self.demote_old_primary(cluster):
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
                self.claim.renew(FailoverStep.WAIT)
                if cause == "missed_heartbeats" and not self.claim.committed_to_promote:
                    self.abandon_if_primary_back(cluster)
            if self.state.identity() != identity:
                continue  # Redis restarted during the wait: its records are not to be trusted
            stored = self.state.redis.hget(fence_key(cluster.pk), "epoch")
            fence = None if stored is None else int(stored)
            over = rules.wait_over(fence, cluster.grant_fence_epoch, self.claim.mine().exists())
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
            cluster,
            cluster.secondary,
            command,
            attempts=5,
            before_attempt=lambda: self.claim.renew(FailoverStep.PROMOTE),
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

    def cause_stands(self, cluster: Cluster, cause: str) -> None:
        """Before every side effect: an automatic failover stops (abandoned) when the cluster went
        into maintenance or its cause has gone (a kept request must not fail the cluster over
        later for a fault that has healed). Past the promotion nothing is abandoned."""
        if cause not in rules.AUTOMATIC or self.claim.committed_to_promote:
            return
        maintenance = Cluster.objects.filter(pk=cluster.pk, maintenance=True).exists()
        last: float = 0
        answer = None
        if not maintenance and cause == "missed_heartbeats":
            last = self.primary_last_answer(cluster)
        if not maintenance and cause in rules.PROBED_CAUSES:
            answer = probe(cluster.primary, cluster.epoch)  # a silent primary: the cause stands
        why = rules.cause_gone(
            cause,
            self.claim.reached,
            maintenance=maintenance,
            epoch=cluster.epoch,
            primary_back=rules.primary_back(last, (cluster.failover_request or {}).get("requested_at", 0)),
            primary_skewed=cause != "clock_skew" or int(cluster.primary_id) in self.state.skewed(),
            primary_answer=answer.body if answer is not None and answer.answered else None,
        )
        if why:
            raise Abandoned(why, {"primary_last_answer_at": last} if last and not maintenance else {})

    def primary_last_answer(self, cluster: Cluster) -> float:
        return self.state.last_answers([cluster.primary_id]).get(cluster.primary_id, 0)

    def abandon_if_primary_back(self, cluster: Cluster) -> None:
        last = self.primary_last_answer(cluster)
        requested = (cluster.failover_request or {}).get("requested_at", 0)
        if rules.primary_back(last, requested):
            raise Abandoned("the primary answers heartbeats again", {"primary_last_answer_at": last})

    def already_promoted(self, cluster: Cluster) -> bool:
        answer = probe(cluster.secondary, cluster.pending_epoch or cluster.epoch)
        return rules.already_promoted(answer.body, cluster.pending_epoch)

    def demote_old_primary(
        self, cluster: Cluster, *, old: Server | None = None, new: Server | None = None, epoch: int | None = None
    ) -> bool:
        """The old primary told it is secondary now: best effort, one attempt (True: acknowledged)."""
        old = old or cluster.primary
        new = new or cluster.secondary
        epoch = epoch or cluster.pending_epoch
        assert epoch is not None, "called with the new epoch, or during the claim (pending epoch set)"
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
