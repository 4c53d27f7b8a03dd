"""Operator actions on a cluster, shared by the API (cluster/api/views.py) and the cluster page
(cluster/views.py), so that both refuse and start work in exactly the same way, and both leave the
same entry in the audit log (who, from where, what)."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.models import Action
from audit.record import record

from .models import Cluster
from .switchover import preflight_switchover, request_switchover
from .tasks import replicate, run_failover

ALREADY_RUNNING = "A failover or switchover is already in progress."


@dataclass
class Outcome:
    """`reasons` is empty when the action started; otherwise it says why not."""

    status: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return not self.reasons


def queue_replication(cluster: Cluster, request) -> Outcome:
    """Start a replication job now; the task itself refuses when a job runs or a failover is on."""
    record(request, Action.REPLICATION_STARTED, cluster)
    replicate.delay(cluster.pk)
    return Outcome("replication job queued")


def confirm_deletions(cluster: Cluster, request) -> Outcome:
    """The operator confirms that a sharp shrink of the primary's files is intended (DESIGN §5);
    the next job deletes, then the flag is cleared by that job."""
    Cluster.objects.filter(pk=cluster.pk).update(deletions_confirmed=True)
    record(request, Action.DELETIONS_CONFIRMED, cluster)
    replicate.delay(cluster.pk)
    return Outcome("deletions confirmed; replication job queued")


def set_maintenance(cluster: Cluster, on: bool, request) -> Outcome:
    """Maintenance on or off (no automatic failover while on); recorded only when it changes."""
    changed = Cluster.objects.filter(pk=cluster.pk, maintenance=not on).update(maintenance=on)
    if changed:
        action = Action.MAINTENANCE_ON if on else Action.MAINTENANCE_OFF
        record(request, action, cluster, changes={"maintenance": [not on, on]})
    cluster.maintenance = on
    return Outcome(f"maintenance {'on' if on else 'off'}")


def start_switchover(cluster_id: int, request) -> Outcome:
    """A planned swap (DESIGN §4a): refused with the preflight's reasons, else a failover request
    written on the row and the failover task queued. Both are recorded with the user, who is also
    written into the request (`requested_by`)."""
    cluster = Cluster.objects.select_related("primary", "secondary").get(pk=cluster_id)
    reasons = preflight_switchover(cluster)
    if not reasons and not request_switchover(cluster, requested_by=request.user.get_username()):
        reasons = [ALREADY_RUNNING]
    details = {"from": cluster.primary.name, "to": cluster.secondary.name, "epoch": cluster.epoch}
    if reasons:
        record(request, Action.SWITCHOVER, cluster, details={**details, "outcome": "refused", "reasons": reasons})
        return Outcome(reasons=reasons)
    record(request, Action.SWITCHOVER, cluster, details={**details, "outcome": "started"})
    run_failover.apply_async((cluster.pk,), expires=30)
    return Outcome("switchover started")
