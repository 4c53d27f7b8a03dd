"""Which clusters get a replication job now: every `replication_interval`, sooner after a failure
(backoff), never while one runs — decided from one annotated query, whatever the cluster count."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cluster.models import Cluster, ReplicationJob
from cluster.replication_schedule import failures_since_last_success, replication_due, with_last_job
from cluster.tasks import dispatch_replication
from tests.factories import ClusterFactory


def _job(cluster, state, minutes_ago):
    job = ReplicationJob.objects.create(cluster=cluster, kind="incremental", epoch=1, state=state)
    finished = None if state == "running" else timezone.now() - timedelta(minutes=minutes_ago)
    ReplicationJob.objects.filter(pk=job.pk).update(finished_at=finished)


def _due(cluster) -> bool:
    annotated = with_last_job(Cluster.objects.filter(pk=cluster.pk)).get()
    failures = failures_since_last_success([cluster.pk]).get(cluster.pk, 0)
    return replication_due(annotated, failures, timezone.now())


def test_a_job_is_due_after_the_interval_and_not_while_one_runs(db):
    fresh, stale, busy = (ClusterFactory(state="healthy", replication_interval=60) for _ in range(3))
    _job(fresh, "succeeded", minutes_ago=0.5)
    _job(stale, "succeeded", minutes_ago=2)
    _job(busy, "succeeded", minutes_ago=5)
    _job(busy, "running", minutes_ago=0)

    assert (_due(fresh), _due(stale), _due(busy)) == (False, True, False)


def test_failures_back_off_exponentially_up_to_the_interval(db):
    cluster = ClusterFactory(
        state="degraded", replication_interval=600, last_replication_at=timezone.now() - timedelta(hours=1)
    )
    for _ in range(3):
        _job(cluster, "failed", minutes_ago=0.2)  # 12 s ago; three failures: wait 2 × 2³ = 16 s

    assert failures_since_last_success([cluster.pk]) == {cluster.pk: 3}
    assert _due(cluster) is False
    ReplicationJob.objects.filter(cluster=cluster).update(finished_at=timezone.now() - timedelta(seconds=17))
    assert _due(cluster) is True


def test_the_dispatcher_costs_the_same_queries_for_1_and_20_clusters(db):
    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            dispatch_replication()
        return len(context.captured_queries)

    _job(ClusterFactory(state="healthy"), "failed", minutes_ago=1)
    few = queries()
    for _ in range(19):
        _job(ClusterFactory(state="healthy"), "failed", minutes_ago=1)

    assert queries() == few
