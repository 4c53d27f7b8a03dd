"""The Celery tasks of the failover and configuration half are thin wrappers: each calls one
function and queues what its `Next` says, no more. No agent, Redis, database or Celery worker:
the functions and the queueing are replaced by recorders."""

from datetime import UTC, datetime

import pytest

from cluster import agent_config, replication_schedule, tasks
from cluster.agent_config import Next


@pytest.fixture
def queued(monkeypatch):
    calls = []
    for task in (tasks.configure_cluster, tasks.push_settings, tasks.push_peer_credentials, tasks.replicate):
        monkeypatch.setattr(
            task, "apply_async", lambda args, task=task, **options: calls.append((task.name, args, options))
        )
        monkeypatch.setattr(task, "delay", lambda *args, task=task: calls.append((task.name, args, {})))
    return calls


def test_a_retry_is_queued_again_after_the_countdown_it_names(monkeypatch, queued):
    monkeypatch.setattr(
        agent_config, "configure", lambda cluster_id: Next("retrying", again=(cluster_id,), again_in_s=5)
    )
    assert tasks.configure_cluster(7) == "retrying"
    assert queued == [("cluster.tasks.configure_cluster", (7,), {"countdown": 5})]


def test_a_wait_until_a_moment_is_queued_with_that_eta(monkeypatch, queued):
    monkeypatch.setattr(
        agent_config,
        "push_settings",
        lambda cluster_id, at, changed: Next("wait", again=(cluster_id, at, changed), again_at=1000.0),
    )
    assert tasks.push_settings(7, 990.0, "x") == "wait"
    assert queued == [("cluster.tasks.push_settings", (7, 990.0, "x"), {"eta": datetime.fromtimestamp(1000.0, tz=UTC)})]


def test_a_configured_cluster_gets_the_replication_job_it_names_and_nothing_else(monkeypatch, queued):
    monkeypatch.setattr(agent_config, "configure", lambda cluster_id: Next("configured", replicate="initial"))
    assert tasks.configure_cluster(7) == "configured"
    assert queued == [("cluster.tasks.replicate", (7, "initial"), {})]


def test_a_last_attempt_queues_nothing(monkeypatch, queued):
    monkeypatch.setattr(agent_config, "push_peer_credentials", lambda cluster_id, attempt: Next("not yet"))
    assert tasks.push_peer_credentials(7, agent_config.PEER_CREDENTIAL_ATTEMPTS) == "not yet"
    assert queued == []


def test_dispatch_replication_queues_one_job_per_due_cluster(monkeypatch, queued):
    monkeypatch.setattr(replication_schedule, "due_cluster_ids", lambda: [3, 5])
    assert tasks.dispatch_replication() == 2
    assert queued == [("cluster.tasks.replicate", (3,), {}), ("cluster.tasks.replicate", (5,), {})]
