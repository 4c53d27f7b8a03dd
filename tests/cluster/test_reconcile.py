"""What `agent_config.reconcile_secondary` decides once the secondary took its role, on the database
(the agent's answer stands in for a real agent: this is about the rows and the next step).

Found in CI: a new cluster's secondary was probed before `configure` reached it, reconciled like a
returning old primary, and marked for a resync; the initial sync then completed, yet the cluster
stayed "replication not current" until the resync had run too (a switchover right after creation
was refused with 409)."""

import pytest

from cluster import agent_config
from cluster.agent_client import AgentAnswer
from cluster.models import Cluster, ReplicationJob
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def secondary_takes_its_role(monkeypatch):
    monkeypatch.setattr(agent_config, "send_role", lambda cluster, server, command, **kw: AgentAnswer(200, {}))


def test_a_new_clusters_secondary_is_configured_for_its_initial_sync_and_no_resync(secondary_takes_its_role):
    cluster = ClusterFactory()  # syncing: its initial sync is under way or next

    outcome = agent_config.reconcile_secondary(cluster.pk)

    assert outcome.replicate == ""
    assert Cluster.objects.get(pk=cluster.pk).needs_resync is False


def test_a_returning_server_of_an_active_cluster_is_resynced(secondary_takes_its_role):
    cluster = ClusterFactory()
    Cluster.objects.filter(pk=cluster.pk).update(state="degraded", active=True)

    outcome = agent_config.reconcile_secondary(cluster.pk)

    assert outcome.replicate == ReplicationJob.Kind.RESYNC
    assert Cluster.objects.get(pk=cluster.pk).needs_resync is True
