"""Notifications end to end (DESIGN §4.5, §9): a committed event goes through the outbox and a real
Celery worker to a real snmptrapd (v2c trap, v3 authPriv trap, inform) and a real SMTP server;
receivers that are down get the notification once they are back, and a killed worker's work is
picked up by the sweeper. Every wait polls with a deadline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from django.db import connection

from alerts import delivery as outbox
from alerts.events import record_event
from alerts.models import Delivery, DeliveryAttempt
from alerts.transports import snmp_oids as oids
from tests.alerts.factories import EmailRuleFactory, SnmpRuleFactory, V3RuleFactory
from tests.factories import ClusterFactory
from tests.support.agents import wait_until
from tests.support.processes import celery_beat, celery_worker
from tests.support.smtp import SmtpServer
from tests.support.snmptrapd import Snmptrapd, V3User, available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="snmptrapd is not installed"),
    # This module's worker takes the `default` queue alone: a session control plane that an
    # earlier file on this test worker started would take its deliveries, with other settings.
    pytest.mark.usefixtures("control_plane_default_stopped"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "notifications"
ENGINE_ID = "80007ed90564656c69766572"  # the product's engine ID in these tests (format 5, "deliver")
EVENT_ID_OID = oids.dotted(oids.EVENT_ID + (0,))
FAST = {
    "SNMP_ENGINE_ID": ENGINE_ID,
    "NOTIFICATION_RETRY_BASE_S": "0.5",
    "NOTIFICATION_RETRY_MAX_S": "2",
    "NOTIFICATION_CLAIM_S": "20",
    "NOTIFICATION_SWEEP_GRACE_S": "1",
    "NOTIFICATION_SWEEP_INTERVAL_S": "1",
    "SNMP_INFORM_TIMEOUT_S": "0.5",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "EMAIL_TIMEOUT": "3",
}


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker_env(smtp):
    return {**FAST, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port)}


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, worker_env):
    """One real worker on the `default` queue for the module (it survives each test's flush)."""
    with django_db_blocker.unblock():
        connection.ensure_connection()
        process = celery_worker(ARTIFACTS, "default", "notify", concurrency=2, **worker_env)
    yield process
    process.stop()


@pytest.fixture
def trapd(tmp_path):
    receiver = Snmptrapd(tmp_path / "snmptrapd", sender_engine_id=ENGINE_ID, user=V3User()).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def fast(settings, worker_env):
    """The same short timings in this process (it writes the rows and queues the first tasks)."""
    for name, value in worker_env.items():
        setattr(settings, name, float(value) if name.startswith(("NOTIFICATION_", "SNMP_INFORM")) else value)
    settings.EMAIL_PORT = int(worker_env["EMAIL_PORT"])


@pytest.fixture
def cluster(transactional_db):
    return ClusterFactory(name="signs-1")


def carries(event_id: int):
    return lambda trap: trap.varbinds.get(EVENT_ID_OID) == event_id


def mails_for(smtp: SmtpServer, event_id: int):
    return smtp.matching(lambda mail: mail.header("X-DMS-Event-Id") == str(event_id))


def wait_finished(event, timeout: float = 30) -> list[Delivery]:
    def finished():
        rows = list(Delivery.objects.filter(event=event).order_by("id"))
        return rows if rows and all(row.status not in ("pending", "sending") for row in rows) else None

    return wait_until(finished, timeout, interval=0.1, message=f"deliveries of event {event.pk} to finish")


def fail(cluster):
    return record_event(
        "server_failed", "dmm-001 missed 3 heartbeats.", cluster=cluster, server=cluster.primary, details={"missed": 3}
    )


def test_an_event_reaches_a_v2c_trap_a_v3_trap_and_an_email_exactly_once(worker, fast, cluster, trapd, smtp):
    SnmpRuleFactory(name="v2c", port=trapd.port, community=trapd.community)
    V3RuleFactory(name="v3", port=trapd.port)
    EmailRuleFactory(name="mail", recipients=["noc@example.com"])

    event = fail(cluster)

    rows = wait_finished(event)
    assert {row.rule.name: row.status for row in rows} == {"v2c": "sent", "v3": "sent", "mail": "delivered"}
    assert all(row.attempts == 1 for row in rows)
    v2c = trapd.wait_for(lambda t: carries(event.pk)(t) and t.version == "v2c", timeout=10)
    v3 = trapd.wait_for(lambda t: carries(event.pk)(t) and t.version == "v3", timeout=10)
    assert (v2c.pdu, v3.pdu, v3.security) == ("TRAP2", "TRAP2", "user dmsuser")
    assert v2c.notification_oid == oids.dotted(oids.NOTIFICATION_OIDS["server_failed"])
    mail = smtp.wait_for(lambda m: m.header("X-DMS-Event-Id") == str(event.pk), timeout=10)
    mail_rule = next(row.rule_id for row in rows if row.rule.name == "mail")
    assert mail.message_id == f"<dms-event-{event.pk}.rule-{mail_rule}@dms-failover>"
    assert f"/alerts/{event.pk}/" in mail.text
    assert len(trapd.matching(carries(event.pk))) == 2
    assert len(mails_for(smtp, event.pk)) == 1


def test_a_recovery_follows_its_failure_to_the_same_receivers(worker, fast, cluster, trapd, smtp):
    SnmpRuleFactory(name="v2c", port=trapd.port, community=trapd.community)
    failure = fail(cluster)
    wait_finished(failure)
    EmailRuleFactory(name="mail-added-later", recipients=["noc@example.com"])

    recovery = record_event(
        "server_recovered", "dmm-001 answers again.", cluster=cluster, server=cluster.primary, recovers=failure
    )

    rows = wait_finished(recovery)
    assert [row.rule.name for row in rows] == ["v2c"]
    trapd.wait_for(carries(recovery.pk), timeout=10)
    assert mails_for(smtp, recovery.pk) == []


def _gaps(delivery: Delivery) -> list[float]:
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    return [(b.started_at - a.finished_at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]


def test_receivers_that_are_down_get_it_once_they_are_back(worker, fast, cluster, trapd, smtp):
    trapd.stop()
    smtp.stop()
    try:
        SnmpRuleFactory(name="inform", port=trapd.port, community=trapd.community, snmp_mode="inform")
        EmailRuleFactory(name="mail", recipients=["noc@example.com"])

        event = fail(cluster)

        def retried():
            rows = list(Delivery.objects.filter(event=event))
            return len(rows) == 2 and all(r.attempts >= 3 and r.status == "pending" and r.last_error for r in rows)

        wait_until(retried, 30, interval=0.1, message="both deliveries to fail and retry")
    finally:
        smtp.start()
        trapd.start()

    rows = wait_finished(event, timeout=30)
    assert {row.rule.name: row.status for row in rows} == {"inform": "delivered", "mail": "delivered"}
    for row in rows:
        gaps = _gaps(row)
        assert all(gap >= outbox.backoff_s(n) - 0.05 for n, gap in enumerate(gaps, start=1)), gaps
        assert row.attempt_log.filter(outcome="failed").count() >= 2
    mail_row = next(row for row in rows if row.rule.name == "mail")
    mail_errors = mail_row.attempt_log.exclude(error="").values_list("error", flat=True)
    assert all("SMTP server unreachable" in error for error in mail_errors)
    informs = trapd.matching(carries(event.pk))
    assert informs and {t.pdu for t in informs} == {"INFORM"}  # a lost ack may resend: same event id
    mails = mails_for(smtp, event.pk)
    assert len(mails) == 1 and mails[0].message_id.startswith(f"<dms-event-{event.pk}.")


def test_a_killed_worker_s_deliveries_are_swept_up_by_another(worker_env, fast, cluster, trapd, smtp, worker):
    """The worker holding a retry dies; beat's sweeper re-queues the row for a new worker."""
    worker.stop()  # this test runs its own worker, killed halfway
    smtp.stop()
    doomed = celery_worker(ARTIFACTS, "default", "doomed", **worker_env)
    beat = None
    replacement = None
    try:
        EmailRuleFactory(name="mail", recipients=["noc@example.com"])
        event = fail(cluster)
        wait_until(
            lambda: Delivery.objects.filter(event=event, attempts__gte=1, status="pending").exists(),
            30,
            interval=0.05,
            message="a failed first attempt",
        )
        doomed.kill()  # its queued retry (an ETA task it holds) dies with it
        smtp.start()
        beat = celery_beat(ARTIFACTS, **worker_env)
        replacement = celery_worker(ARTIFACTS, "default", "replacement", **worker_env)

        rows = wait_finished(event, timeout=60)
    finally:
        for process in (beat, replacement, doomed):
            if process is not None:
                process.stop()
        worker.start()
        worker.wait_for_log("ready.", timeout=60)

    assert rows[0].status == "delivered"
    mails = mails_for(smtp, event.pk)
    assert len(mails) == 1


class PrivateRedis:
    """A redis-server of this test's own (no persistence), so that restarting it disturbs nobody."""

    def __init__(self, workdir: Path) -> None:
        from tests.support.agents import free_port

        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), 10, interval=0.05, message="the private redis-server")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_a_redis_restart_loses_queued_tasks_but_no_notification(worker_env, fast, cluster, smtp, worker, tmp_path):
    """The broker restarts empty while a delivery waits for its retry: the sweeper finds the row
    (the database is the outbox, the broker only a doorbell) and it is delivered once."""
    worker.stop()
    smtp.stop()
    broker = PrivateRedis(tmp_path / "redis").start()
    env = {**worker_env, "REDIS_URL": broker.url, "CELERY_BROKER_URL": broker.url}
    processes = []
    try:
        processes.append(celery_worker(ARTIFACTS, "default", "private-broker", **env))
        processes.append(celery_beat(ARTIFACTS, **env))
        EmailRuleFactory(name="mail", recipients=["noc@example.com"])
        # This process queues the first task on its own broker, which nobody consumes here: the
        # sweeper (beat, every second) queues it on the private one.
        event = fail(cluster)
        wait_until(
            lambda: Delivery.objects.filter(event=event, attempts__gte=2, status="pending").exists(),
            30,
            interval=0.05,
            message="failed attempts through the private broker",
        )

        first = processes[0]
        mark = len(first.log())  # the log file is appended to across runs: read only what follows
        broker.kill()
        broker.start()  # empty: whatever was queued is gone
        smtp.start()
        # Celery 5.7's worker can give up on a lost Redis connection ("Unrecoverable error:
        # AttributeError ... 'hostname'" in kombu) and then hang in its shutdown; in production its
        # supervisor restarts it. Do the same when that happened.
        wait_until(
            lambda: "Unrecoverable error" in first.log()[mark:] or "Connected to" in first.log()[mark:],
            30,
            interval=0.1,
            message="the worker to reconnect or give up",
        )
        if "Unrecoverable error" in first.log()[mark:]:
            first.kill()
            processes[0] = celery_worker(ARTIFACTS, "default", "private-broker-restarted", **env)

        rows = wait_finished(event, timeout=60)
    finally:
        for process in processes:
            process.stop()
        broker.kill()
        worker.start()
        worker.wait_for_log("ready.", timeout=60)

    assert rows[0].status == "delivered"
    assert len(mails_for(smtp, event.pk)) == 1
