"""A planned switchover, as the operator starts it (DESIGN §4a): the preflight that says why it
cannot start now, and the failover request it writes. From there the failover pipeline runs it
(cluster/failover.py) like any other cause.
"""

from __future__ import annotations

import time

from . import failover_rules as rules
from .choices import ClusterState, Role, ServerState
from .incident_log import new_incident_id
from .models import Cluster
from .role_commands import probe


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
            failing = rules.failing_critical_services(answer.body)
            if failing:
                reasons.append(f"Critical services fail on the secondary: {', '.join(failing)}.")
            if answer.body.get("role") != Role.SECONDARY or answer.body.get("epoch") != cluster.epoch:
                reasons.append(
                    f"The secondary's agent is {answer.body.get('role')} at epoch {answer.body.get('epoch')}, "
                    f"not secondary at epoch {cluster.epoch}."
                )
    return reasons


def request_switchover(cluster: Cluster, requested_by: str = "") -> bool:
    """Write the switchover's failover request, unless one stands (False: one was there first)."""
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
