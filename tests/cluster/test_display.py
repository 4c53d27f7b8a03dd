"""Roles as they are and protection (cluster/display.py): after a failover the old primary is the
former primary, fenced at the cluster's fence epoch, never a second primary; a degraded cluster
says whether it runs unprotected or has its primary down, and why."""

from datetime import timedelta
from types import SimpleNamespace

from django.utils import timezone

from cluster.choices import Role, ServerState
from cluster.display import protection, shown_role


class FakeServer(SimpleNamespace):
    def get_role_display(self):
        return Role(self.role).label

    def get_state_display(self):
        return ServerState(self.state).label


def server(pk, name, role, state="up"):
    return FakeServer(pk=pk, name=name, role=role, state=state)


def failed_over(**fields):
    """dmm-b promoted at epoch 2; dmm-a's agent last said primary, then went silent."""
    new, old = server(2, "dmm-b", "primary"), server(1, "dmm-a", "primary", "down")
    values = dict(
        primary=new,
        secondary=old,
        primary_id=2,
        secondary_id=1,
        grant_fence_epoch=2,
        state="degraded",
        maintenance=False,
        needs_resync=True,
        replication_current=lambda now=None: False,
    )
    return SimpleNamespace(**{**values, **fields})


def test_the_old_primary_is_the_former_primary_fenced_at_the_epoch():
    cluster = failed_over()

    assert shown_role(cluster, cluster.primary).label == "Primary"
    old = shown_role(cluster, cluster.secondary)
    assert (old.key, old.label, old.note) == ("former_primary", "Former primary", "fenced at epoch 2")


def test_roles_the_agents_hold_are_shown_as_they_are():
    cluster = failed_over(secondary=server(1, "dmm-a", "secondary"))

    assert shown_role(cluster, cluster.secondary).label == "Secondary"
    cluster.secondary.role = "candidate"
    assert shown_role(cluster, cluster.secondary).label == "Candidate"


def test_a_degraded_cluster_whose_primary_serves_runs_unprotected():
    shown = protection(failed_over())

    assert shown.key == "unprotected"
    assert shown.headline == "Running unprotected: only dmm-b serves"
    assert shown.reasons == ["dmm-a is down", "dmm-a must be resynced from dmm-b"]


def test_an_old_primary_back_but_not_demoted_is_a_reason():
    cluster = failed_over(secondary=server(1, "dmm-a", "primary", "up"), needs_resync=False)

    assert protection(cluster).reasons == [
        "dmm-a is the former primary (fenced at epoch 2), not yet demoted",
        "replication is not current",
    ]


def test_a_degraded_cluster_with_its_primary_down_says_so():
    cluster = failed_over(primary=server(2, "dmm-b", "primary", "down"), maintenance=True)

    shown = protection(cluster)

    assert shown.key == "primary_down"
    assert shown.headline == "Primary down: dmm-b does not answer heartbeats"
    assert "the cluster is in maintenance: no automatic failover" in shown.reasons


def test_healthy_syncing_and_failing_over_clusters_have_no_warning():
    for state in ("healthy", "syncing", "failing_over"):
        assert protection(failed_over(state=state), timezone.now() - timedelta(seconds=1)) is None
