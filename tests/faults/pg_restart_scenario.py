"""PostgreSQL restarted during a failover, against a private PostgreSQL cluster of the suite's own
(port 5439, Debian's pg_createcluster), so that the suite's own connections survive.

Run by tests/faults/test_pg_restart.py as a subprocess (its Django settings must name the private
database from the start); prints one JSON line with what it saw. Its workers notify its own SMTP
server and snmptrapd (the events live in the private database): every event at least once per
target — a send in flight when PostgreSQL went away may be repeated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PORT = 5439
CLUSTER = "dmsfaults"
DATABASE = "dms_faults"
REDIS_URL = os.environ.get("FAULTS_REDIS_URL", "redis://127.0.0.1:6391/5")


def postgres_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def ensure_private_postgres() -> None:
    from tests.support.agents import wait_until

    version = postgres_version()
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    if not any(line.split()[:2] == [version, CLUSTER] for line in listed.splitlines()):
        subprocess.run(
            ["pg_createcluster", version, CLUSTER, "-p", str(PORT), "--", "--auth=trust"],
            check=True,
            capture_output=True,
        )
    subprocess.run(["pg_ctlcluster", version, CLUSTER, "start"], capture_output=True)
    wait_until(
        lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(PORT), "-q"]).returncode == 0,
        10,
        0.1,
        f"the private PostgreSQL on port {PORT}",
    )
    psql = ["psql", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", "-q", "-c"]
    subprocess.run([*psql, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"], check=True)
    subprocess.run([*psql, f"CREATE DATABASE {DATABASE}"], check=True)


def restart_private_postgres(action: str = "restart") -> None:
    subprocess.run(["pg_ctlcluster", postgres_version(), CLUSTER, action, "-m", "fast"], check=True)


def main() -> int:
    ensure_private_postgres()
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{PORT}/{DATABASE}",
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        DJANGO_SETTINGS_MODULE="dms_admin.settings",
    )
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import transaction

    from cluster.models import Cluster
    from dms_admin.redis import redis_client
    from tests.support.agents import AgentFactory, wait_until
    from tests.support.controlplane import TIMING, server_row, start_smtp_sink
    from tests.support.notifications import ClusterNotifications, Sinks
    from tests.support.processes import celery_beat, celery_worker
    from tests.support.serving import PrimaryPoller, assert_no_overlap
    from tests.support.snmptrapd import Snmptrapd, available

    redis_client().flushdb()
    logs = Path(__file__).resolve().parents[2] / "test-artifacts" / "pg-restart"
    processes = {}
    factory = AgentFactory(Path(tempfile.mkdtemp(prefix="dms-pg-restart-")))
    result: dict = {}
    sinks = Sinks(
        start_smtp_sink(),  # EMAIL_* and the notification timings for the workers started below
        Snmptrapd(Path(tempfile.mkdtemp(prefix="dms-pg-trapd-"))).start() if available() else None,
    )
    try:
        processes = {
            "heartbeat": celery_worker(logs, "heartbeat", "heartbeat", concurrency=2),
            "failover": celery_worker(logs, "failover", "failover", concurrency=2),
            "default": celery_worker(logs, "default", "default", concurrency=1),
            "replication": celery_worker(logs, "replication", "replication", concurrency=1),
            "beat": celery_beat(logs),
        }
        primary_agent, secondary_agent = factory("pg-a"), factory("pg-b")
        primary = server_row(primary_agent, "DMM-SVR-C210-K9")
        secondary = server_row(secondary_agent, "DMM-FA-C210-K9")
        with transaction.atomic():
            cluster = Cluster.objects.create(
                name="pg-restart", application="dmm", primary=primary, secondary=secondary, **TIMING
            )
            notifications = ClusterNotifications.create_rules(cluster, sinks)
        poller = PrimaryPoller([primary_agent.heartbeat_url, secondary_agent.heartbeat_url]).start()
        wait_until(lambda: Cluster.objects.get(pk=cluster.pk).state == "healthy", 60, 0.2, "healthy")
        primary_agent.wait_primary_status(200, timeout=15)

        Cluster.objects.filter(pk=cluster.pk).update(fault_pause="promote")
        primary_agent.kill()
        paused = f"dms:paused:{cluster.pk}"
        wait_until(lambda: (redis_client().get(paused) or b"").startswith(b"promote:"), 40, 0.05, "the pause")
        restart_private_postgres()
        from django.db import connection

        connection.close()  # this process's connection died with the server
        Cluster.objects.filter(pk=cluster.pk).update(fault_pause="")
        wait_until(
            lambda: (c := Cluster.objects.get(pk=cluster.pk)).epoch == 2 and c.state != "failing_over",
            90,
            0.2,
            "the failover to complete after the restart",
        )
        secondary_agent.wait_primary_status(200, timeout=10)
        poller.stop()
        assert_no_overlap(primary_agent.serving_intervals(), secondary_agent.serving_intervals())
        poller.check_no_overlap()
        notifications.assert_delivered(exactly_once=False)
        from alerts.models import Event

        final = Cluster.objects.get(pk=cluster.pk)
        result = {
            "epoch": final.epoch,
            "primary": final.primary.name,
            "failovers_completed": Event.objects.filter(cluster=final, type="failover_completed").count(),
            "no_overlap": True,
            "notified": True,
        }
    except Exception as error:  # reported to the test, which fails with it
        result = {"error": f"{type(error).__name__}: {error}"}
    finally:
        for process in processes.values():
            process.stop()
        factory.close()
        sinks.smtp.stop()
        if sinks.trapd is not None:
            sinks.trapd.stop()
        from django.db import connections

        connections.close_all()
        restart_private_postgres("stop")  # the cluster stays on disk for the next run; the server does not
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
