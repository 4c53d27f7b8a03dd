"""What the pages say about a cluster's appliances and its protection, from what the database knows
and nothing more. Model-free: it reads a cluster row with its two servers.

- A role as it is. The cluster row names the primary and the secondary (the failover task's
  decision at the cluster's epoch); a server's `role` is what its agent last said (or the commit
  wrote). After a failover the old primary's agent said "primary" before it went silent, so the
  row alone would show two primaries. The one that is not the cluster's primary is shown as the
  *former* primary, with the fence that stops it from serving: no lease is granted below that
  epoch (docs/protocol.md). It stays so until its agent answers again and is demoted.
- Protection. A degraded cluster whose primary is up serves from one appliance: "running
  unprotected", with the reasons the database holds (the secondary down, not demoted yet, to be
  resynced, replication not current). A degraded cluster whose primary is down is not serving
  from it, which is said instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .choices import ClusterState, Role, ServerState

FORMER_PRIMARY = "former_primary"  # the badge's colour key (cluster.choices.COLOURS)


@dataclass(frozen=True)
class ShownRole:
    key: str  # picks the badge's colour
    label: str
    note: str = ""  # what else the database knows, e.g. "fenced at epoch 2"


def shown_role(cluster, server) -> ShownRole:
    """The role to show for `server`, one of `cluster`'s two appliances."""
    if server.role == Role.PRIMARY and server.pk != cluster.primary_id:
        return ShownRole(FORMER_PRIMARY, "Former primary", f"fenced at epoch {cluster.grant_fence_epoch}")
    return ShownRole(server.role, server.get_role_display())


@dataclass(frozen=True)
class Protection:
    key: str  # "unprotected" or "primary_down"
    headline: str
    reasons: list[str] = field(default_factory=list)


def protection(cluster, now=None) -> Protection | None:
    """What a degraded cluster is missing; None when there is nothing to warn about (healthy,
    syncing, failing over: the state badge says those)."""
    if cluster.state != ClusterState.DEGRADED:
        return None
    primary, secondary = cluster.primary, cluster.secondary
    if primary.state != ServerState.UP:
        why = (
            "the cluster is in maintenance: no automatic failover"
            if cluster.maintenance
            else "no failover has completed"
        )
        return Protection(
            "primary_down",
            f"Primary down: {primary.name} does not answer heartbeats",
            [why, f"{secondary.name} is {secondary.get_state_display().lower()}"],
        )
    reasons = []
    if secondary.state != ServerState.UP:
        reasons.append(f"{secondary.name} is {secondary.get_state_display().lower()}")
    role = shown_role(cluster, secondary)
    if role.key == FORMER_PRIMARY and secondary.state == ServerState.UP:
        reasons.append(f"{secondary.name} is the former primary ({role.note}), not yet demoted")
    if cluster.needs_resync:
        reasons.append(f"{secondary.name} must be resynced from {primary.name}")
    elif not cluster.replication_current(now):
        reasons.append("replication is not current")
    if not reasons:
        reasons.append("the heartbeat link between the appliances is down")
    return Protection("unprotected", f"Running unprotected: only {primary.name} serves", reasons)
