"""Configuring the agents outside a failover: a new cluster's roles, a change of timing, a new peer
credential, an appliance that returns. Each is an ordered role command (cluster/role_commands.py)
sent to both agents or one.

Each function does the work once and returns a `Next`: what the Celery task (cluster/tasks.py, a
thin wrapper) queues after it, the same task again later or a replication job. Nothing here queues
anything itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F

from . import failover_rules as rules
from .choices import ClusterState, Role, StepKind
from .incident_log import record_step
from .models import Cluster, ReplicationJob, Server
from .role_commands import RoleCommand, probe, send_role

log = logging.getLogger(__name__)

# Then the next role command (a reconcile, a failover) carries the peer credential.
PEER_CREDENTIAL_ATTEMPTS = 60


@dataclass(frozen=True)
class Next:
    """What follows one run: the same task again (`again`: its arguments; after `again_in_s`
    seconds, or at the wall time `again_at`), and/or a replication job of kind `replicate`."""

    status: str
    again: tuple | None = None
    again_in_s: float | None = None
    again_at: float | None = None
    replicate: str = ""


def _load(cluster_id: int) -> Cluster | None:
    return Cluster.objects.select_related("primary", "secondary").filter(pk=cluster_id).first()


def _failover_under_way(cluster: Cluster) -> bool:
    return cluster.state == ClusterState.FAILING_OVER or cluster.failover_request is not None


def configure(cluster_id: int) -> Next:
    """A new cluster: both agents configured at epoch 1 (DESIGN §5, "Cluster created")."""
    cluster = _load(cluster_id)
    if cluster is None:
        return Next("no such cluster")
    primary = send_role(cluster, cluster.primary, RoleCommand(Role.PRIMARY, cluster.epoch, peer=cluster.secondary))
    secondary = send_role(cluster, cluster.secondary, RoleCommand(Role.SECONDARY, cluster.epoch, peer=cluster.primary))
    if not (primary.ok and secondary.ok):
        problems = [
            f"{s.name}: {a.error or a.body}"
            for s, a in ((cluster.primary, primary), (cluster.secondary, secondary))
            if not a.ok
        ]
        log.warning("configuring cluster %s failed: %s", cluster.name, "; ".join(problems))
        # A reused appliance may hold a later epoch than this new cluster's: start at that epoch
        # (the seq was adopted already) rather than be refused for ever.
        adopted = Cluster.objects.filter(pk=cluster_id, state=ClusterState.SYNCING, epoch__lt=F("epoch_floor")).update(
            epoch=F("epoch_floor"), grant_fence_epoch=F("epoch_floor")
        )
        return Next("retrying", again=(cluster_id,), again_in_s=0 if adopted else 5)
    Server.objects.filter(pk=cluster.primary_id).update(role=Role.PRIMARY)
    Server.objects.filter(pk=cluster.secondary_id).update(role=Role.SECONDARY)
    return Next("configured", replicate=ReplicationJob.Kind.INITIAL)


def _resend_roles(cluster: Cluster) -> bool:
    """Both agents sent the role they hold again (same epoch, a new seq), carrying the cluster's
    current settings and each one's peer credential; True once both acknowledged. The primary only
    while it holds the primary role at this epoch (a primary that does not is the failover
    pipeline's to reconcile, never a command's to promote)."""
    held = [send_role(cluster, cluster.secondary, RoleCommand(Role.SECONDARY, cluster.epoch, peer=cluster.primary))]
    if rules.disagreement(probe(cluster.primary, cluster.epoch).body, cluster.epoch) == "":
        held.append(
            send_role(cluster, cluster.primary, RoleCommand(Role.PRIMARY, cluster.epoch, peer=cluster.secondary))
        )
    return len(held) == 2 and all(answer.ok for answer in held)


def push_settings(cluster_id: int, acknowledged_at: float | None = None, changed_at: str | None = None) -> Next:
    """A change of timing as an ordered command to both agents (docs/protocol.md, "Settings
    changes are commands"), sent until both acknowledged it. `lease_bound_s` is cleared only once
    the old lease has run out since both acknowledged (a grant of the old lease may have left just
    before an acknowledgement, however late that came), and only if the settings are still those
    of this push's start (`changed_at`, the row's `settings_changed_at` then): each command carries
    the row's timing as it leaves, so with a change in between, one agent may hold the older
    settings while the other acknowledged the newer; that change's own push settles it."""
    cluster = _load(cluster_id)
    if cluster is None or cluster.lease_bound_s is None:
        return Next("nothing to push")
    if acknowledged_at is None or changed_at is None:
        started_with = cluster.settings_changed_at.isoformat() if cluster.settings_changed_at else ""
        if _failover_under_way(cluster):
            return Next("failover in progress", again=(cluster_id,), again_in_s=cluster.heartbeat_interval)
        if not _resend_roles(cluster):
            return Next(
                "not acknowledged by both agents yet", again=(cluster_id,), again_in_s=cluster.heartbeat_interval
            )
        return Next(
            "acknowledged; the old lease may still run",
            again=(cluster_id, time.time(), started_with),
            again_in_s=_old_lease_runs_s(cluster),
        )
    settled_at = acknowledged_at + _old_lease_runs_s(cluster)
    if time.time() < settled_at:
        return Next("the old lease may still run", again=(cluster_id, acknowledged_at, changed_at), again_at=settled_at)
    unchanged = Cluster.objects.filter(pk=cluster_id)
    if changed_at:
        unchanged = unchanged.filter(settings_changed_at=datetime.fromisoformat(changed_at))
    else:
        unchanged = unchanged.filter(settings_changed_at__isnull=True)
    unchanged.update(lease_bound_s=None)
    return Next("acknowledged")


def _old_lease_runs_s(cluster: Cluster) -> float:
    """How long an old-lease grant sent just before an acknowledgement may still hold."""
    return (cluster.lease_bound_s or 0.0) + cluster.max_grant_delay + cluster.max_clock_skew


def push_peer_credentials(cluster_id: int, attempt: int = 1) -> Next:
    """A server's agent token changed: its peer must heartbeat it with the new token's peer
    credential (a token rotation without a failover: operator guide, "Keys and tokens")."""
    cluster = _load(cluster_id)
    if cluster is None:
        return Next("no such cluster")
    if _failover_under_way(cluster) or not _resend_roles(cluster):
        again = (cluster_id, attempt + 1) if attempt < PEER_CREDENTIAL_ATTEMPTS else None
        return Next("not acknowledged by both agents yet", again=again, again_in_s=cluster.heartbeat_interval)
    return Next("acknowledged")


def reconcile_secondary(cluster_id: int) -> Next:
    """A returning server (an old primary, a wiped appliance) becomes secondary at the current epoch."""
    cluster = _load(cluster_id)
    if cluster is None or _failover_under_way(cluster):
        return Next("failover in progress")
    answer = send_role(cluster, cluster.secondary, RoleCommand(Role.SECONDARY, cluster.epoch, peer=cluster.primary))
    if not answer.ok:
        return Next(f"not configured: {answer.error or answer.body}")
    Server.objects.filter(pk=cluster.secondary_id).update(role=Role.SECONDARY)
    if cluster.state == ClusterState.SYNCING:
        # A new cluster's secondary probed before `configure` reached it: the initial sync, under
        # way or next, is the full copy; a resync on top only kept the new cluster "not current".
        return Next("configured for the initial sync")
    # Not healthy again until it holds the new primary's data (files only it has: quarantined).
    Cluster.objects.filter(pk=cluster_id).update(needs_resync=True)
    record_step(
        cluster_id,
        StepKind.REJOINED,
        worker="default worker",
        server=cluster.secondary.name,
        epoch=cluster.epoch,
        primary=cluster.primary.name,
    )
    return Next("configured", replicate=ReplicationJob.Kind.RESYNC)
