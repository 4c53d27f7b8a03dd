"""When a settings push may clear the lease bound (`cluster/agent_config.push_settings`), on the
database alone: both agents acknowledged, the old lease has run out since, and the settings are
still those the push began with.

Found by the protocol model (tests/model/test_regressions.py, `a_settings_push_overtaken_by_a_newer_change`):
a push whose commands left on both sides of a second change (each carries the row's timing as it
leaves) had one agent holding the older settings, yet cleared the bound because its
acknowledgements came after the change; a failover then waited out the new, shorter lease while
the old primary still held the longer one: two appliances served."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from cluster import agent_config
from cluster.models import Cluster
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

OLD_LEASE_S = 4.5


def _cluster_changed_at(changed_at):
    cluster = ClusterFactory()
    Cluster.objects.filter(pk=cluster.pk).update(lease_bound_s=OLD_LEASE_S, settings_changed_at=changed_at)
    return cluster


def _long_ago() -> float:
    """An acknowledgement long enough ago that a grant of the old lease has run out since."""
    return time.time() - OLD_LEASE_S - 10


def test_the_bound_is_cleared_once_the_settings_the_push_began_with_are_acknowledged_and_settled():
    began = timezone.now() - timedelta(seconds=30)
    cluster = _cluster_changed_at(began)

    outcome = agent_config.push_settings(cluster.pk, _long_ago(), began.isoformat())

    assert outcome.status == "acknowledged" and outcome.again is None
    assert Cluster.objects.get(pk=cluster.pk).lease_bound_s is None


def test_a_change_after_the_push_began_keeps_the_bound_for_that_changes_own_push():
    began = timezone.now() - timedelta(seconds=30)
    newer = began + timedelta(seconds=5)  # saved between the push's two commands, before both acknowledged
    cluster = _cluster_changed_at(newer)

    agent_config.push_settings(cluster.pk, _long_ago(), began.isoformat())

    assert Cluster.objects.get(pk=cluster.pk).lease_bound_s == OLD_LEASE_S


def test_an_acknowledgement_whose_old_lease_may_still_run_waits_until_it_has():
    began = timezone.now() - timedelta(seconds=30)
    cluster = _cluster_changed_at(began)
    acknowledged_at = time.time()

    outcome = agent_config.push_settings(cluster.pk, acknowledged_at, began.isoformat())

    assert outcome.again == (cluster.pk, acknowledged_at, began.isoformat())
    assert outcome.again_at == pytest.approx(acknowledged_at + OLD_LEASE_S + 0.25 + 0.1)
    assert Cluster.objects.get(pk=cluster.pk).lease_bound_s == OLD_LEASE_S
