"""The tasks a saved row starts read the row as saved: queued after the save, never before it.

The API saves outside a transaction (no ATOMIC_REQUESTS), where `on_commit` runs at once: queued
from pre_save, `push_settings` could read the row before the save, find no lease bound, push
nothing, and the agents never got the new settings (seen as a settings test waiting in vain for
the new lease under load). Here the stand-in task reads the row the moment it is queued."""

import pytest

from cluster import signals
from cluster.models import Cluster, Server
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as the API's saves


class RowsAtQueueing:
    """Stands in for a task: what its `delay` would find in the database at that moment."""

    def __init__(self, read):
        self.read, self.seen = read, []

    def delay(self, pk):
        self.seen.append(self.read(pk))


def test_a_timing_change_is_pushed_with_its_lease_bound_already_saved(monkeypatch):
    cluster = ClusterFactory()
    push = RowsAtQueueing(lambda pk: Cluster.objects.get(pk=pk).lease_bound_s)
    monkeypatch.setattr(signals, "push_settings", push)

    cluster.heartbeat_interval = 1.0  # lease 4 s → 2 s: the old 4 s one bounds the waits meanwhile
    cluster.save()

    assert push.seen == [4.0]


def test_a_new_agent_token_is_carried_to_the_peer_once_saved(monkeypatch):
    cluster = ClusterFactory()
    push = RowsAtQueueing(lambda pk: Cluster.objects.get(pk=pk).primary.agent_token)
    monkeypatch.setattr(signals, "push_peer_credentials", push)

    primary = Server.objects.get(pk=cluster.primary_id)
    primary.agent_token = "a-new-token-of-forty-characters-at-least-x"
    primary.save()

    assert push.seen == ["a-new-token-of-forty-characters-at-least-x"]
