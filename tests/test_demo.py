"""End to end: `make run` as a new user tries it (issue #6).

One demo per module, started exactly as `make run` starts it (`python -m cluster.demo`, SQLite in
its run folder), in a run folder of its own (DMS_RUN_DIR) on a Redis database of its own (so its
Celery queues never meet the session control plane's). The fixture reads the URL, the login and the
kill command from the banner and runs that command as printed; each test then waits, with a
deadline, for one place where a user would see the failover. The last test presses Ctrl-C.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.cookiejar import CookieJar
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from django.conf import settings

from tests.support.agents import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
REDIS_DB = 7  # the session control plane uses the suite's Redis database 0
BANNER_DEADLINE_S = 90  # migrate on a fresh SQLite database, four agents, both clusters healthy
FAILOVER_DEADLINE_S = 30  # from the kill: missed heartbeats, lease wait, promotion, notifications
STOP_DEADLINE_S = 45  # the demo gives each of its four stop tiers 10 s
T = TypeVar("T")


@dataclass
class Demo:
    process: subprocess.Popen
    output: Path
    run_dir: Path
    env: dict[str, str]
    url: str
    username: str
    password: str
    kill_command: str
    mail_dir: Path
    trap_log: Path | None
    browser: urllib.request.OpenerDirector
    primary_before: str = ""
    epoch_before: int = 0
    killed_at: float = 0.0

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def get(self, path: str) -> str:
        with self.browser.open(self.url + path, timeout=10) as answer:
            return answer.read().decode()

    def eventually(self, check: Callable[[], T | None], what: str) -> T:
        """The first truthy result of `check` before FAILOVER_DEADLINE_S after the kill."""
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > self.killed_at + FAILOVER_DEADLINE_S:
                logs = sorted((self.run_dir / "logs").glob("*.log"))
                raise AssertionError(f"{what}: not within {FAILOVER_DEADLINE_S} s of the kill; logs in {logs}")
            time.sleep(0.25)


def own_redis_url() -> str:
    return urllib.parse.urlsplit(settings.REDIS_URL)._replace(path=f"/{REDIS_DB}").geturl()


def banner_field(text: str, label: str) -> str:
    match = re.search(rf"^  {label} +(.+)$", text, re.MULTILINE)
    assert match, f"no “{label}” line in the banner:\n{text}"
    return match.group(1).strip()


def path_in_banner(value: str) -> Path:
    """The path at the start of a banner value (printed relative to the checkout when inside it)."""
    return ROOT / value.split()[0]


def log_in(url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    """A browser-like session: the login form's CSRF token and cookie, then the session cookie."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with browser.open(url + "login/", timeout=10) as answer:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', answer.read().decode())
    assert token, "no CSRF token on the login page"
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1), "next": "/"}
    ).encode()
    with browser.open(url + "login/", data=form, timeout=10) as answer:
        assert "/login/" not in answer.url, "the printed login was refused"
    return browser


def cluster_card(dashboard: str, name: str) -> tuple[str, int]:
    """(primary, epoch) as the dashboard's card of cluster `name` shows them."""
    for card in dashboard.split('<article class="card cluster-card"')[1:]:
        if f">{name}</a>" in card:
            primary = re.search(r'<div class="name">([^<]+)</div>', card)  # the Primary box comes first
            epoch = re.search(r"Epoch <b>(\d+)</b>", card)
            assert primary and epoch, card
            return primary.group(1), int(epoch.group(1))
    raise AssertionError(f"no card for {name} on the dashboard")


def wait_for_banner(process: subprocess.Popen, output: Path) -> str:
    deadline = time.monotonic() + BANNER_DEADLINE_S
    while True:
        text = output.read_text(errors="replace")
        if "Stop everything: Ctrl-C" in text:
            return text
        assert process.poll() is None, f"the demo exited ({process.returncode}) before its banner:\n{text}"
        assert time.monotonic() < deadline, f"no banner within {BANNER_DEADLINE_S} s:\n{text}"
        time.sleep(0.2)


def alive(pid: int) -> bool:
    """Not gone and not a zombie (nobody may reap orphans in a container)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (a Celery worker's pool children, for instance)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def recorded_pids(run_dir: Path) -> dict[str, int]:
    pids = {}
    for path in (run_dir / "pids").glob("*.pid"):
        try:
            pids[path.stem] = int(path.read_text().strip())
        except ValueError:
            continue
    return pids


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    run_dir = tmp_path_factory.mktemp("demo-run")
    redis_url = own_redis_url()
    redis.Redis.from_url(redis_url).flushdb()  # heartbeat state of an earlier run's clusters 1 and 2
    env = {**os.environ, "DMS_RUN_DIR": str(run_dir), "PORT": str(free_port()), "REDIS_URL": redis_url}
    # make run's defaults: SQLite, broker = REDIS_URL, the encryption key generated in the run folder
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "FIELD_ENCRYPTION_KEYS"):
        env.pop(name, None)
    output = run_dir.parent / f"{run_dir.name}-output.txt"
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "cluster.demo"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C is for the orchestrator alone, as in a terminal
        )
    pids: dict[str, int] = {}
    try:
        text = wait_for_banner(process, output)
        pids = recorded_pids(run_dir)
        url = banner_field(text, "Dashboard")
        username, password = banner_field(text, "Login").split(" / ")
        kill = re.search(r"^  (.*-m cluster\.demo kill-primary dmm-demo)$", text, re.MULTILINE)
        assert kill, text
        traps = banner_field(text, "Trap log")
        run = Demo(
            process=process,
            output=output,
            run_dir=run_dir,
            env=env,
            url=url,
            username=username,
            password=password,
            kill_command=kill.group(1),
            mail_dir=path_in_banner(banner_field(text, "Mail sink")),
            trap_log=None if traps.startswith("none") else path_in_banner(traps),
            browser=log_in(url, username, password),
        )
        run.primary_before, run.epoch_before = cluster_card(run.get(""), "dmm-demo")
        killed = subprocess.run(
            run.kill_command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        run.killed_at = time.monotonic()
        assert killed.returncode == 0, killed.stderr
        assert f"Killed {run.primary_before}" in killed.stdout
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in {**pids, **recorded_pids(run_dir)}.values():  # whatever a failed stop left behind
            for member in group_members(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
        redis.Redis.from_url(redis_url).flushdb()


def test_the_dashboard_shows_the_secondary_promoted_at_the_next_epoch(demo: Demo) -> None:
    def promoted() -> tuple[str, int] | None:
        primary, epoch = cluster_card(demo.get(""), "dmm-demo")
        return (primary, epoch) if primary != demo.primary_before else None

    primary, epoch = demo.eventually(promoted, "a new dmm-demo primary on the dashboard")
    assert {primary, demo.primary_before} == {"dmm-demo-a", "dmm-demo-b"}
    assert epoch == demo.epoch_before + 1


def test_the_demo_keeps_its_encryption_key_in_its_run_folder_and_no_secret_in_its_database(demo: Demo) -> None:
    key = demo.run_dir / "field-encryption-key"
    tokens = [agent["token"] for agent in json.loads((demo.run_dir / "demo.json").read_text())["agents"].values()]
    database = b"".join(path.read_bytes() for path in demo.run_dir.glob("dms.sqlite3*"))

    assert key.stat().st_mode & 0o777 == 0o600
    assert tokens and not [token for token in tokens if token.encode() in database]


def test_the_alerts_page_lists_the_failover(demo: Demo) -> None:
    def failover_row() -> str | None:
        rows = demo.get("alerts/").split("<tr")[1:]
        return next((row for row in rows if "Failover completed" in row and ">dmm-demo</a>" in row), None)

    row = demo.eventually(failover_row, "a Failover completed row for dmm-demo on /alerts/")
    assert "Critical" in row


def test_an_email_about_the_failover_lands_in_the_mail_sink(demo: Demo) -> None:
    def failover_mail() -> EmailMessage | None:
        for path in sorted(demo.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["Subject"] == "[CRITICAL] dmm-demo: Failover completed":
                return message  # type: ignore[return-value]
        return None

    message = demo.eventually(failover_mail, f"a failover email in {demo.mail_dir}")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert f"epoch {demo.epoch_before + 1}" in body.get_content()
    assert message["Message-ID"].startswith("<dms-event-")


def test_a_trap_about_the_failover_lands_in_the_trap_log(demo: Demo) -> None:
    if demo.trap_log is None:
        pytest.skip("snmptrapd is not installed (Debian package snmptrapd), so the demo runs without a trap log")
    trap_log = demo.trap_log

    def failover_trap() -> str | None:
        text = trap_log.read_text(errors="replace") if trap_log.exists() else ""
        return next(
            (
                line
                for line in text.splitlines()
                if "OID: DMS-FAILOVER-MIB::dmsFailoverCompleted" in line
                and "dmsEventCluster.0 = STRING: dmm-demo\t" in line
            ),
            None,
        )

    line = demo.eventually(failover_trap, f"a dmsFailoverCompleted trap for dmm-demo in {trap_log}")
    assert "dmsEventSeverity.0 = INTEGER: critical(3)" in line


def test_ctrl_c_stops_every_process_the_demo_started(demo: Demo) -> None:
    pids = recorded_pids(demo.run_dir)
    assert {"demo", "web", "beat", "mail", "worker-default"} <= set(pids), pids
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(STOP_DEADLINE_S) == 0, demo.text()[-3000:]
    left = {name: group_members(pid) for name, pid in pids.items() if alive(pid) or group_members(pid)}
    assert not left, f"still running after Ctrl-C: {left}"
    assert not list((demo.run_dir / "pids").glob("*.pid"))
    assert "everything the demo started is stopped" in demo.text()
