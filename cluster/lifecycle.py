"""What happens when a cluster is created."""

from __future__ import annotations

from django.db import transaction


def cluster_created(cluster) -> None:
    """Configure both agents once the new row is committed, then the initial sync follows
    (DESIGN §5, "Cluster created")."""
    from .tasks import configure_cluster

    transaction.on_commit(lambda: configure_cluster.delay(cluster.pk))
