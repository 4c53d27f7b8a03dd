"""What happens to a cluster around its protocol: creation and the initial sync."""

from __future__ import annotations

from django.db import transaction

from alerts.choices import EventType
from alerts.events import record_event

from .choices import ClusterState
from .models import Cluster


def cluster_created(cluster: Cluster) -> None:
    """Configure both agents once the new row is committed (DESIGN §5, "Cluster created")."""
    from .tasks import configure_cluster

    transaction.on_commit(lambda: configure_cluster.delay(cluster.pk))


def initial_sync(cluster: Cluster) -> None:
    """Marks the cluster protected once both agents hold their roles.

    The copy of licenses, modules and data belongs to the replication jobs (their own issue); until
    they land, a configured cluster counts as synced.
    """
    with transaction.atomic():
        if Cluster.objects.filter(pk=cluster.pk, state=ClusterState.SYNCING).update(
            state=ClusterState.HEALTHY, active=True
        ):
            record_event(
                EventType.INITIAL_SYNC_COMPLETED,
                f"Cluster {cluster.name} is configured: {cluster.primary.name} primary, "
                f"{cluster.secondary.name} secondary, epoch {cluster.epoch}.",
                cluster=cluster,
                server=cluster.secondary,
                details={"epoch": cluster.epoch},
            )
