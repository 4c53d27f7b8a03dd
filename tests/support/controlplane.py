"""A real control plane for integration tests: heartbeat, failover and default Celery workers and
beat, started once per session against the test database and the test Redis; real agents per test.

Timing for tests: interval 1 s, threshold 3, lease 2 s, grant delay 0.5 s, skew 0.2 s — a 2×
margin over the scheduling lag of a loaded 2-core machine (a grant refused for lateness would
make a healthy primary stop serving and the test flaky).
"""

from __future__ import annotations

import copy
import hashlib
import os
import signal
from pathlib import Path

import pytest
from django.db import connection, transaction

from cluster.hardware import EXAMPLE
from cluster.models import Cluster, Server
from tests.support.agents import AgentFactory, wait_until
from tests.support.faultproxy import FaultProxy
from tests.support.notifications import FAST_NOTIFICATIONS, ClusterNotifications, Sinks
from tests.support.processes import CONTROL_PLANE_LOGS, celery_beat, celery_worker
from tests.support.serving import PrimaryPoller, assert_no_overlap
from tests.support.smtp import SmtpServer
from tests.support.snmptrapd import Snmptrapd
from tests.support.snmptrapd import available as snmptrapd_available

ARTIFACTS = CONTROL_PLANE_LOGS
TIMING: dict = {}  # the product's defaults
# The session's receivers: the control plane's workers send notification email to the SMTP server,
# and the fault matrix's traps and informs to snmptrapd (None where it is not installed).
SMTP_SINK: SmtpServer | None = None
SNMPTRAPD: Snmptrapd | None = None


def start_smtp_sink() -> SmtpServer:
    """Start the session's SMTP server and point EMAIL_* of every process started later at it: a
    worker reads its email settings from its environment once, at start. The notification timings
    go the same way (tests/support/notifications.py)."""
    global SMTP_SINK
    SMTP_SINK = SmtpServer().start()
    os.environ.update(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(SMTP_SINK.port),
        EMAIL_TIMEOUT="3",
        **FAST_NOTIFICATIONS,
    )
    return SMTP_SINK


STARTERS = {
    "heartbeat": lambda: celery_worker(ARTIFACTS, "heartbeat", "heartbeat", concurrency=2),
    "failover": lambda: celery_worker(ARTIFACTS, "failover", "failover", concurrency=2),
    # A short staleness limit, so that a job whose worker a test kills is replaced quickly.
    "default": lambda: celery_worker(ARTIFACTS, "default", "default", concurrency=2, REPLICATION_STALE_S="4"),
    "replication": lambda: celery_worker(ARTIFACTS, "replication", "replication", concurrency=2),
    "beat": lambda: celery_beat(ARTIFACTS),
}


@pytest.fixture(scope="session")
def control_plane(django_db_setup, django_db_blocker, tmp_path_factory):
    """Workers and beat for the whole session (they survive each test's table flush)."""
    global SNMPTRAPD
    from dms_admin.redis import redis_client

    redis_client().flushdb()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sink = start_smtp_sink()  # before the workers, which take its port from their environment
    if snmptrapd_available():
        SNMPTRAPD = Snmptrapd(tmp_path_factory.mktemp("snmptrapd")).start()
    with django_db_blocker.unblock():
        connection.ensure_connection()
        processes = {name: start() for name, start in STARTERS.items()}
    yield processes
    for process in processes.values():
        process.stop()
    sink.stop()
    if SNMPTRAPD is not None:
        SNMPTRAPD.stop()


@pytest.fixture
def smtp_sink(control_plane) -> SmtpServer:
    """The SMTP server the control plane's workers send to (shared by the session: match messages
    by event id or recipient)."""
    assert SMTP_SINK is not None
    return SMTP_SINK


def notification_sinks() -> Sinks:
    assert SMTP_SINK is not None, "the control_plane fixture starts the receivers"
    return Sinks(SMTP_SINK, SNMPTRAPD)


def _started_control_plane(request) -> dict | None:
    """The session's control plane processes if a test before this one started them, else None
    (without starting them)."""
    for fixturedef in request._fixturemanager.getfixturedefs("control_plane", request.node) or []:
        cached = fixturedef.cached_result
        if cached is not None and cached[2] is None:
            return cached[0]
    return None


@pytest.fixture
def control_plane_paused(request):
    """Pause the session's control plane, if a test before this one started it, for tests whose
    cluster rows must not be configured, probed or replicated by it (SIGSTOP, SIGCONT after)."""
    processes = list((_started_control_plane(request) or {}).values())
    for process in processes:
        process.signal(signal.SIGSTOP)
    yield
    for process in processes:
        process.signal(signal.SIGCONT)


@pytest.fixture(scope="module")
def control_plane_default_stopped(request):
    """Stop the `default` worker of the session's control plane, if a test before this module started
    it, for a module that runs its own worker on that queue; start it again after. (SIGSTOP is not
    enough: a stopped worker's pending BRPOP still takes the next message.)"""
    processes = _started_control_plane(request)
    if processes is not None:
        processes["default"].kill()
    yield
    if processes is not None:
        processes["default"] = STARTERS["default"]()


def restart_control_plane(processes: dict, names=None) -> None:
    """Kill and start again (what systemd's Restart= does for a crashed or wedged worker)."""
    for name in names or list(processes):
        processes[name].kill()
        processes[name] = STARTERS[name]()


@pytest.fixture
def agents(tmp_path):
    factory = AgentFactory(tmp_path)
    yield factory
    factory.close()


class ClusterUnderTest:
    """Two real agents, the rows that name them, and the checks every scenario ends with."""

    def __init__(self, cluster: Cluster, primary_agent, secondary_agent):
        self.cluster = cluster
        self.agents = {primary_agent.name: primary_agent, secondary_agent.name: secondary_agent}
        self.primary_agent = primary_agent
        self.secondary_agent = secondary_agent
        self.poller = PrimaryPoller([primary_agent.heartbeat_url, secondary_agent.heartbeat_url]).start()
        self.notifications: ClusterNotifications | None = None

    def events(self, *types: str) -> list[str]:
        from alerts.models import Event

        rows = Event.objects.filter(cluster=self.cluster).order_by("id")
        if types:
            rows = rows.filter(type__in=types)
        return list(rows.values_list("type", flat=True))

    def wait_event(self, event_type: str, timeout: float):
        from alerts.models import Event

        wait_until(
            lambda: Event.objects.filter(cluster=self.cluster, type=event_type).exists(),
            timeout,
            interval=0.1,
            message=f"a {event_type} event",
        )
        return Event.objects.filter(cluster=self.cluster, type=event_type).latest("id")

    def refresh(self) -> Cluster:
        self.cluster.refresh_from_db()
        return self.cluster

    def wait_state(self, predicate, timeout: float, message: str) -> Cluster:
        wait_until(lambda: predicate(self.refresh()), timeout, interval=0.1, message=message)
        return self.cluster

    def wait_both_heard(self, timeout: float = 15) -> Cluster:
        """Until the control plane has counted both appliances up. The initial sync makes a cluster
        healthy, and the secondary's grants make the primary serve, before a heartbeat of the
        control plane may have been answered: a fault injected earlier meets a primary it never heard."""
        return self.wait_state(_both_up, timeout, "both appliances heard by the control plane")

    def agent_for(self, server: Server):
        return self.agents[server.name]

    def assert_never_two_primaries(self) -> None:
        self.poller.stop()
        assert_no_overlap(*(agent.serving_intervals() for agent in self.agents.values()))
        self.poller.check_no_overlap()

    def assert_notified(self, *, exactly_once: bool) -> None:
        """Every event of this cluster reached each of its rules' receivers (made with notify=True):
        exactly once unless the scenario crashed a control-plane process, Redis or PostgreSQL."""
        assert self.notifications is not None, "make the cluster with notify=True"
        self.notifications.assert_delivered(exactly_once=exactly_once)


def _both_up(cluster: Cluster) -> bool:
    return cluster.primary.state == cluster.secondary.state == "up"


@pytest.fixture
def make_cluster(control_plane, transactional_db, agents):
    made = []

    def make(
        name: str = "dmm-cluster",
        checks_primary=None,
        clock_offset_primary=0.0,
        clock_offset_secondary=0.0,
        proxied: bool = False,
        inventory: dict | None = None,
        files: dict[str, bytes] | None = None,
        secondary_files: dict[str, bytes] | None = None,
        notify: bool = False,
        reuse_epoch: int | None = None,
        **timing,
    ) -> ClusterUnderTest:
        primary_agent = agents(
            f"{name}-a", checks=checks_primary or [], clock_offset=clock_offset_primary, inventory=inventory
        )
        secondary_agent = agents(f"{name}-b", clock_offset=clock_offset_secondary, inventory=_identity_only(inventory))
        if reuse_epoch is not None:  # an appliance taken from another cluster, still at that epoch
            status, answer = secondary_agent.role("secondary", reuse_epoch, 1000)
            assert status == 200, answer
        write_files(primary_agent.data_dir, files or {})
        write_files(secondary_agent.data_dir, secondary_files or {})
        proxies = {agent.name: _proxies(agent) for agent in (primary_agent, secondary_agent)} if proxied else {}
        primary = server_row(primary_agent, "DMM-SVR-C210-K9", proxies.get(primary_agent.name))
        secondary = server_row(secondary_agent, "DMM-FA-C210-K9", proxies.get(secondary_agent.name))
        with transaction.atomic():  # the rules exist before any event of the cluster can
            cluster = Cluster.objects.create(
                name=name, application="dmm", primary=primary, secondary=secondary, **{**TIMING, **timing}
            )
            rules = ClusterNotifications.create_rules(cluster, notification_sinks()) if notify else None
        under_test = ClusterUnderTest(cluster, primary_agent, secondary_agent)
        under_test.notifications = rules
        under_test.proxies = proxies
        made.append(under_test)
        under_test.wait_state(lambda c: c.state == "healthy", 30, "the cluster to be configured")
        primary_agent.wait_primary_status(200, timeout=15)
        return under_test

    yield make
    for under_test in made:
        under_test.poller.stop()
        for pair in under_test.proxies.values():
            for proxy in pair.values():
                proxy.stop()


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` by relative path, with its sha256 (hidden temp folders left out)."""
    root = Path(root)
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    }


def _identity_only(inventory: dict | None) -> dict | None:
    """The failover appliance's own inventory: the same system, none of the primary's licenses."""
    if inventory is None:
        return None
    system = dict(inventory.get("system") or {})
    system["part_number"] = "DMM-FA-C210-K9"
    system["configuration"] = {}
    return {"system": system, "licenses": [], "modules": []}


def _proxies(agent) -> dict[str, FaultProxy]:
    return {
        "heartbeat": FaultProxy(agent.heartbeat_url).start(),
        "intranet": FaultProxy(agent.intranet_url).start(),
    }


def server_row(agent, part_number: str, proxies: dict | None = None, name: str | None = None) -> Server:
    """The Server row of a test agent (named after it unless `name`): its URLs and token, or its
    fault proxies' URLs when the scenario cuts links. Needs Django set up, nothing else (the
    benchmarks call it too)."""
    return Server.objects.create(
        name=name or agent.name,
        application="dmm",
        part_number=part_number,
        hardware=copy.deepcopy(EXAMPLE),
        heartbeat_url=proxies["heartbeat"].url if proxies else agent.heartbeat_url,
        intranet_url=proxies["intranet"].url if proxies else agent.intranet_url,
        agent_token=agent.token,
    )
