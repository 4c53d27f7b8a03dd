"""`make screenshots`: the pictures of the main pages in README.md, taken again from a seeded state.

    python -m tools.screenshots [--out docs/screenshots] [--keep]

A throwaway SQLite database in a temporary folder is migrated and seeded with a small estate (a
cluster that failed over two hours ago and still runs on one appliance, a cluster created this
morning, a Show and Share deployment, a day of events of every severity, a notification rule);
Django's server serves it and Chromium (Debian's, driven by Playwright) signs in as an administrator
and photographs the dashboard, the failed-over cluster, the alerts and the notification rule form
at 1280 × 800. Times are relative to the moment it runs; nothing outside the temporary folder is
touched (no Redis, no agents, no Celery: the seeded rows stand in for what they would write).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/lib/chromium/chromium"
VIEWPORT = {"width": 1280, "height": 800}
USERNAME, PASSWORD = "alice-admin", "screenshots-only-password"
SERVER_START_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(folder: Path) -> dict[str, str]:
    """The web app's settings for a private run: its own database and key folder; Celery's tasks
    (a new cluster's configuration) stay in memory, unsent; a Redis URL that nothing answers, so that
    a page reaching for Redis fails loudly instead of reading another run's."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dms_admin.settings",
        "DATABASE_URL": f"sqlite:///{folder / 'dms.sqlite3'}",
        "DMS_RUN_DIR": str(folder),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CELERY_BROKER_URL": "memory://localhost/",
        "TIME_ZONE": os.environ.get("TIME_ZONE", "UTC"),
    }


def seed() -> dict[str, int]:
    """The estate the pictures show; returns the ids the pages need."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from alerts.choices import SEVERITY_OF, EventType
    from alerts.models import Event, NotificationRule
    from cluster.choices import ClusterState, Role, ServerState
    from cluster.hardware import EXAMPLE
    from cluster.models import Cluster, Deployment, Server

    now = timezone.now()
    admin = get_user_model().objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    admin.groups.add(Group.objects.get(name="admin"))

    def server(name: str, part: str, application: str = "dmm", **fields) -> Server:
        port = 9100 + Server.objects.count() * 2
        return Server.objects.create(
            name=name,
            application=application,
            part_number=part,
            hardware=EXAMPLE,
            heartbeat_url=f"http://10.0.1.{port % 250}:8443",
            intranet_url=f"http://10.0.0.{port % 250}:8443",
            **fields,
        )

    def cluster(name: str, primary: Server, secondary: Server, created_hours_ago: float, **fields) -> Cluster:
        made = Cluster.objects.create(
            name=name, application=primary.application, primary=primary, secondary=secondary, active=True, **fields
        )
        Cluster.objects.filter(pk=made.pk).update(created_at=now - timedelta(hours=created_hours_ago))
        return made

    events: list[tuple] = []  # written at the end in time order: ids grow with time, as they do live

    def event(kind: EventType, when, message: str, cluster: Cluster, server: Server | None = None, **details):
        events.append((when, kind, message, cluster, server, details))

    up = dict(state=ServerState.UP, last_heartbeat_at=now - timedelta(seconds=1))
    signs = Deployment.objects.create(name="hq-digital-signs", kind="digital_signs")
    training = Deployment.objects.create(name="training-show-and-share", kind="show_and_share")

    # hq-signs-dmm: its primary dmm-hq-a stopped answering two hours ago; dmm-hq-b took over at
    # epoch 2 and serves alone since. The old primary's agent last said "primary" (the database
    # mirrors what an agent last answered), the fence stands at epoch 2.
    old = server("dmm-hq-a", "DMM-SVR-C210-K9", role=Role.PRIMARY, state=ServerState.DOWN)
    Server.objects.filter(pk=old.pk).update(last_heartbeat_at=now - timedelta(hours=2))
    new = server("dmm-hq-b", "DMM-FA-C210-K9", role=Role.PRIMARY, **up)
    failed_at = now - timedelta(hours=2)
    hq = cluster(
        "hq-signs-dmm",
        new,
        old,
        created_hours_ago=30,
        deployment=signs,
        state=ClusterState.DEGRADED,
        last_failover_at=failed_at + timedelta(seconds=0.4),
        last_replication_at=failed_at - timedelta(seconds=40),
        needs_resync=True,
    )
    Cluster.objects.filter(pk=hq.pk).update(epoch=2, grant_fence_epoch=2, epoch_floor=2)
    event(
        EventType.COMPONENT_FAILED,
        now - timedelta(hours=9),
        "Component disk-2 failed on dmm-hq-a; no failover for a component.",
        hq,
        old,
        component="disk-2",
    )
    first_miss = failed_at - timedelta(seconds=4)  # three missed slots 2 s apart, the third declares it
    event(
        EventType.SERVER_FAILED,
        failed_at,
        "Appliance dmm-hq-a of cluster hq-signs-dmm missed 3 heartbeats in a row.",
        hq,
        old,
        missed_slots=3,
        first_missed_slot_at=first_miss.timestamp(),
        last_answer_at=(first_miss - timedelta(seconds=2)).timestamp(),
    )
    event(
        EventType.FAILOVER_COMPLETED,
        failed_at + timedelta(seconds=0.4),
        "dmm-hq-b is now the primary of cluster hq-signs-dmm (epoch 2); failover after missed heartbeats.",
        hq,
        new,
        cause="missed_heartbeats",
        epoch=2,
        old_primary="dmm-hq-a",
    )
    event(
        EventType.REPLICATION_FAILED,
        failed_at + timedelta(minutes=1),
        "Replication of hq-signs-dmm failed: dmm-hq-a does not answer.",
        hq,
    )

    # lobby-signs-dmm: created this morning; its secondary lost a critical service for 40 s.
    lobby_a = server("dmm-lobby-a", "DMM-SVR-C210-K9", role=Role.PRIMARY, **up)
    lobby_b = server("dmm-lobby-b", "DMM-FA-C210-K9", role=Role.SECONDARY, **up)
    lobby = cluster(
        "lobby-signs-dmm",
        lobby_a,
        lobby_b,
        created_hours_ago=5,
        deployment=signs,
        state=ClusterState.HEALTHY,
        last_replication_at=now - timedelta(seconds=20),
    )
    event(EventType.INITIAL_SYNC_COMPLETED, now - timedelta(hours=4.9), "Initial sync of lobby-signs-dmm done.", lobby)
    blip = now - timedelta(hours=3)
    event(
        EventType.CRITICAL_SERVICE_FAILED,
        blip,
        "Critical service media-streamer failed on dmm-lobby-b (3 checks in a row).",
        lobby,
        lobby_b,
        service="media-streamer",
    )
    event(
        EventType.CRITICAL_SERVICE_RECOVERED,
        blip + timedelta(seconds=40),
        "Critical service media-streamer on dmm-lobby-b passes again.",
        lobby,
        lobby_b,
        service="media-streamer",
    )

    # training-sns: a planned switchover this afternoon, healthy all day.
    sns_a = server("sns-training-a", "SNS-SVR-C210EN-K9", "sns", role=Role.SECONDARY, **up)
    sns_b = server("sns-training-b", "SNS-FA-C210EN-K9", "sns", role=Role.PRIMARY, **up)
    sns = cluster(
        "training-sns",
        sns_b,
        sns_a,
        created_hours_ago=400,
        deployment=training,
        state=ClusterState.HEALTHY,
        last_failover_at=now - timedelta(hours=6),
        last_replication_at=now - timedelta(seconds=35),
    )
    Cluster.objects.filter(pk=sns.pk).update(epoch=5, grant_fence_epoch=5, epoch_floor=5)
    event(
        EventType.SWITCHOVER_COMPLETED,
        now - timedelta(hours=6),
        "sns-training-b is now the primary of cluster training-sns (epoch 5); planned switchover.",
        sns,
        sns_b,
    )

    for when, kind, message, where, server_, details in sorted(events, key=lambda e: e[0]):
        made = Event.objects.create(
            type=kind, severity=SEVERITY_OF[kind], cluster=where, server=server_, message=message, details=details
        )
        Event.objects.filter(pk=made.pk).update(created_at=when)
    failure = Event.objects.get(type=EventType.CRITICAL_SERVICE_FAILED)
    Event.objects.filter(type=EventType.CRITICAL_SERVICE_RECOVERED).update(recovers=failure)
    Event.objects.filter(pk=failure.pk).update(acknowledged_at=blip + timedelta(minutes=5), acknowledged_by=admin)
    NotificationRule.objects.create(
        name="noc-mail", channel="email", recipients=["noc@example.com"], event_types=[t.value for t in EventType]
    )
    return {"failed_over": hq.pk}


def start_web(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(folder / "web.log", "wb")  # noqa: SIM115 (closed with the process's folder)
    web = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/v1/health/", timeout=1)
            return web, url
        except urllib.error.HTTPError:
            return web, url
        except OSError:
            if web.poll() is not None:
                break
            time.sleep(0.2)
    web.terminate()
    sys.exit(f"screenshots: the web app did not start; see {folder / 'web.log'}")


def photograph(url: str, ids: dict[str, int], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = [
        ("dashboard", "/"),
        ("cluster-after-failover", f"/clusters/{ids['failed_over']}/"),
        ("alerts", "/alerts/"),
        ("notification-rule-form", "/alerts/rules/new/email/"),
    ]
    out.mkdir(parents=True, exist_ok=True)
    taken = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url + "/login/")
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        for name, path in shots:
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            target = out / f"{name}.png"
            page.screenshot(path=str(target))
            taken.append(target)
        browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, web log)")
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"screenshots: {CHROMIUM} is missing (Debian package chromium)")
    folder = Path(tempfile.mkdtemp(prefix="dms-screenshots-"))
    env = environment(folder)
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    ids = seed()
    web, url = start_web(env, folder)
    try:
        for path in photograph(url, ids, args.out.resolve()):
            print(f"screenshots: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    finally:
        web.terminate()
        web.wait(timeout=10)
        if args.keep:
            print(f"screenshots: kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
