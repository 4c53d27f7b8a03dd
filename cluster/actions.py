"""Operator actions on a cluster, shared by the API (cluster/api/views.py) and the cluster page
(cluster/views.py), so that both refuse and start work in exactly the same way."""

from __future__ import annotations

from dataclasses import dataclass, field

from .failover import preflight_switchover, request_switchover
from .models import Cluster
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


def queue_replication(cluster: Cluster) -> Outcome:
    """Start a replication job now; the task itself refuses when a job runs or a failover is on."""
    replicate.delay(cluster.pk)
    return Outcome("replication job queued")


def confirm_deletions(cluster: Cluster) -> Outcome:
    """The operator confirms that a sharp shrink of the primary's files is intended (DESIGN §5);
    the next job deletes, then the flag is cleared by that job."""
    Cluster.objects.filter(pk=cluster.pk).update(deletions_confirmed=True)
    replicate.delay(cluster.pk)
    return Outcome("deletions confirmed; replication job queued")


def start_switchover(cluster_id: int) -> Outcome:
    """A planned swap (DESIGN §4a): refused with the preflight's reasons, else a failover request
    written on the row and the failover task queued."""
    cluster = Cluster.objects.select_related("primary", "secondary").get(pk=cluster_id)
    reasons = preflight_switchover(cluster)
    if not reasons and not request_switchover(cluster):
        reasons = [ALREADY_RUNNING]
    if reasons:
        return Outcome(reasons=reasons)
    run_failover.apply_async((cluster.pk,), expires=30)
    return Outcome("switchover started")
