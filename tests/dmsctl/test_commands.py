"""Every dmsctl command against the running web app, with real rows: what an operator reads, what
a script gets with --json, and the exit code of each outcome (0 ok, 1 refused, 2 usage, 3 auth,
4 cannot connect / server error)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from alerts.models import Event
from audit.models import AuditEntry
from cluster.models import Cluster
from tests.factories import ClusterFactory, EventFactory, FailoverServerFactory, ServerFactory
from tests.support.processes import REPO_ROOT

from .conftest import Dmsctl

pytestmark = pytest.mark.integration


def healthy_cluster(name: str = "signs-hq") -> Cluster:
    now = timezone.now()
    primary = ServerFactory(
        name=f"{name}-a", role="primary", state="up", last_heartbeat_at=now - timedelta(seconds=1.5)
    )
    secondary = FailoverServerFactory(
        name=f"{name}-b", role="secondary", state="up", last_heartbeat_at=now - timedelta(seconds=2.5)
    )
    return ClusterFactory(
        name=name,
        primary=primary,
        secondary=secondary,
        state="healthy",
        epoch=3,
        active=True,
        heartbeat_interval=1.0,
        last_replication_at=now - timedelta(seconds=12),
    )


def test_list_shows_every_cluster(dmsctl):
    cluster = healthy_cluster()
    ClusterFactory(name="lab-dmm", maintenance=True)

    result = dmsctl("list")

    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "APP",
        "STATE",
        "EPOCH",
        "PRIMARY",
        "SECONDARY",
        "MAINT",
        "REPLICATION",
        "LAG",
    ]
    assert rows[1].split()[:8] == [
        str(cluster.pk),
        "signs-hq",
        "dmm",
        "healthy",
        "3",
        "signs-hq-a",
        "signs-hq-b",
        "off",
    ]
    assert "lab-dmm" in rows[0] and " on " in rows[0]

    scripted = dmsctl("list", "--json")
    assert scripted.returncode == 0
    assert [c["name"] for c in json.loads(scripted.stdout)] == ["lab-dmm", "signs-hq"]


def test_status_shows_roles_epoch_timing_heartbeat_ages_lag_and_the_last_incident(dmsctl):
    cluster = healthy_cluster()
    failed = EventFactory(type="server_failed", cluster=cluster, server=cluster.primary, message="signs-hq-a down")
    EventFactory(type="failover_completed", cluster=cluster, server=cluster.secondary, message="signs-hq-b promoted")
    EventFactory(type="replication_failed", cluster=cluster, message="not an incident")

    result = dmsctl("status", "signs-hq")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Cluster signs-hq" in out and "healthy, epoch 3, maintenance off, active" in out
    assert "heartbeat every 1 s, failover after 3 missed (3 s), lease 2 s" in out
    lag = re.search(r"Replication  last job never, lag ([\d.]+) s \(current\)", out)
    assert lag and 12 <= float(lag.group(1)) < 60, out
    lines = out.splitlines()
    primary = next(line for line in lines if line.startswith("primary "))
    assert primary.split()[:4] == ["primary", "signs-hq-a", "primary", "up"]
    assert float(primary.split()[4]) >= 1.5 and primary.endswith("s ago")
    assert out.index("signs-hq-a down") < out.index("signs-hq-b promoted")  # oldest first
    assert "not an incident" not in out

    scripted = json.loads(dmsctl("status", str(cluster.pk), "--json").stdout)
    assert scripted["cluster"]["epoch"] == 3 and scripted["cluster"]["replication"]["lag_s"] >= 12
    assert scripted["servers"]["secondary"]["heartbeat_age_s"] >= 2.5
    assert [e["id"] for e in scripted["events"]][-1] == failed.pk


def test_status_shows_a_former_primary_never_a_second_primary(dmsctl):
    cluster = healthy_cluster("failed-over")
    Cluster.objects.filter(pk=cluster.pk).update(epoch=4, state="degraded")
    cluster.secondary.role = "primary"  # its agent's last word before it went silent
    cluster.secondary.save(update_fields=["role"])

    out = dmsctl("status", "failed-over").stdout

    secondary = next(line for line in out.splitlines() if line.startswith("secondary "))
    assert "former primary, fenced at epoch 4" in secondary, out
    assert (
        sum(line.split()[2] == "primary" for line in out.splitlines() if line.startswith(("primary ", "secondary ")))
        == 1
    )


def test_maintenance_on_and_off_is_audited_as_dmsctl(dmsctl):
    cluster = healthy_cluster()

    on = dmsctl("maintenance", "signs-hq", "on")
    assert (on.returncode, on.stdout.strip()) == (0, "Maintenance on for cluster signs-hq."), on.stderr
    assert Cluster.objects.get(pk=cluster.pk).maintenance is True
    off = dmsctl("maintenance", "signs-hq", "off", "--json")
    assert off.returncode == 0 and json.loads(off.stdout)["maintenance"] is False

    entries = list(AuditEntry.objects.order_by("id").values_list("action", "source", "username"))
    assert entries == [
        ("maintenance_on", "cli", "oscar-operator"),
        ("maintenance_off", "cli", "oscar-operator"),
    ]


def test_a_refused_switchover_exits_1_with_the_reasons(dmsctl):
    cluster = ClusterFactory(name="syncing")  # not active: the preflight refuses

    result = dmsctl("switchover", "syncing")

    assert result.returncode == 1
    assert "dmsctl: refused" in result.stderr
    assert "  - The cluster is not active yet: its initial sync has not completed." in result.stderr
    assert Cluster.objects.get(pk=cluster.pk).failover_request is None
    assert AuditEntry.objects.get(action="switchover").source == "cli"


def test_events_filters_and_prints_oldest_first(dmsctl):
    cluster, other = healthy_cluster(), healthy_cluster("lab")
    first = EventFactory(type="server_failed", cluster=cluster, message="first failure")
    EventFactory(type="server_recovered", cluster=cluster, message="back again")
    EventFactory(type="server_failed", cluster=other, message="elsewhere")

    result = dmsctl("events", "--cluster", "signs-hq", "--severity", "critical")

    assert result.returncode == 0, result.stderr
    assert "first failure" in result.stdout and "back again" not in result.stdout and "elsewhere" not in result.stdout
    everything = json.loads(dmsctl("events", "--json", "--limit", "2").stdout)
    assert [e["message"] for e in everything] == ["back again", "elsewhere"]
    assert dmsctl("events", "--type", "server_failed", "--json").stdout.count('"id"') == 2
    assert json.loads(dmsctl("events", "--json", "--cluster", str(cluster.pk)).stdout)[0]["id"] == first.pk


def test_events_follow_prints_new_events_as_json_lines(dmsctl):
    cluster = healthy_cluster()
    old = EventFactory(cluster=cluster, message="before following")
    follower = dmsctl.popen("events", "--follow", "--json", "--interval", "0.2", "--cluster", cluster.name)
    try:
        assert json.loads(follower.stdout.readline())["id"] == old.pk
        new = EventFactory(cluster=cluster, type="failover_completed", message="while following")
        line = _readline(follower, timeout=15)
        assert json.loads(line)["id"] == new.pk and json.loads(line)["message"] == "while following"
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            code = follower.wait(timeout=10)
        except subprocess.TimeoutExpired:  # seen twice under load: say what it was doing
            follower.kill()
            out, err = follower.communicate()
            pytest.fail(f"dmsctl did not stop on Ctrl-C within 10 s; stderr: {err[-2000:]!r}; stdout: {out[-500:]!r}")
    assert code == 0


def _readline(process, timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, f"no new line within {timeout} s"
    return lines[0]


def test_ack_acknowledges_as_the_token_user(dmsctl):
    first, second = EventFactory.create_batch(2)

    result = dmsctl("ack", str(first.pk), str(second.pk))

    assert result.returncode == 0, result.stderr
    assert f"Event {first.pk} (server_failed) acknowledged by oscar-operator" in result.stdout
    assert set(Event.objects.values_list("acknowledged_by__username", flat=True)) == {"oscar-operator"}
    assert set(AuditEntry.objects.values_list("action", "source")) == {("acknowledged", "cli")}
    unknown = dmsctl("ack", "999999")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "dmsctl: no event 999999")


def test_usage_errors_exit_2(dmsctl):
    healthy_cluster()

    assert dmsctl().returncode == 2
    assert dmsctl("maintenance", "signs-hq", "sideways").returncode == 2
    assert dmsctl("events", "--limit", "0").returncode == 2
    assert dmsctl("ack", "abc").returncode == 2
    unknown = dmsctl("status", "no-such-cluster")
    assert unknown.returncode == 2 and "no cluster named 'no-such-cluster'" in unknown.stderr
    assert dmsctl("status", "999999").returncode == 2
    help_text = dmsctl("--help")
    assert help_text.returncode == 0 and "exit codes:" in help_text.stdout and "DMSCTL_TOKEN" in help_text.stdout


def test_auth_errors_exit_3(dmsctl, viewer_token):
    healthy_cluster()

    missing = dmsctl("list", DMSCTL_TOKEN="")
    assert missing.returncode == 3 and "no API token" in missing.stderr
    wrong = dmsctl("list", DMSCTL_TOKEN="not-a-token")
    assert wrong.returncode == 3 and "authentication failed" in wrong.stderr
    viewer = dmsctl("maintenance", "signs-hq", "on", DMSCTL_TOKEN=viewer_token)
    assert viewer.returncode == 3 and "not allowed" in viewer.stderr
    assert dmsctl("list", DMSCTL_TOKEN=viewer_token).returncode == 0  # a viewer reads
    assert not Cluster.objects.get(name="signs-hq").maintenance


def test_the_config_file_gives_url_and_token(web, operator_token, tmp_path):
    healthy_cluster()
    config = tmp_path / "dmsctl.toml"
    config.write_text(f'url = "{web}"\ntoken = "{operator_token}"\n')
    config.chmod(0o600)
    dmsctl = Dmsctl(tmp_path, "", None)

    result = dmsctl("--config", str(config), "list", DMSCTL_URL="")

    assert result.returncode == 0, result.stderr
    assert "signs-hq" in result.stdout and result.stderr == ""
    default = tmp_path / ".config" / "dmsctl.toml"
    default.parent.mkdir()
    default.write_text(config.read_text())
    default.chmod(0o644)
    loose = dmsctl("list", DMSCTL_URL="")
    assert loose.returncode == 0 and "others may read it" in loose.stderr
    broken = dmsctl("--config", str(tmp_path / "missing.toml"), "list")
    assert broken.returncode == 2 and "does not exist" in broken.stderr


def test_cannot_connect_or_server_error_exits_4(tmp_path):
    unreachable = Dmsctl(tmp_path, "http://127.0.0.1:9", "some-token")("list", timeout=30)
    assert unreachable.returncode == 4 and "cannot connect to http://127.0.0.1:9" in unreachable.stderr

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<h1>Server Error (500)</h1>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        failed = Dmsctl(tmp_path, url, "some-token")("list", timeout=30)
    finally:
        server.shutdown()
    assert failed.returncode == 4 and "answered 500" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_dmsctl_runs_without_the_control_planes_packages():
    """Standard library only: its modules import nothing from Django or the project's apps."""
    sources = "\n".join(path.read_text() for path in (REPO_ROOT / "dmsctl").glob("*.py"))
    for package in ("django", "rest_framework", "cluster", "alerts", "audit", "requests"):
        assert f"import {package}" not in sources and f"from {package}" not in sources
