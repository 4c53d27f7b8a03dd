"""End to end: `make run` as a new user tries it (issues #6 and #12); CI runs it inside `make test`.

The demo is started exactly as a user starts it, `make run` (SQLite in its run folder), in a run
folder of its own (DMS_RUN_DIR), with REDIS_URL naming the suite's Redis as a user's environment
might: the demo must not use it (it runs a redis-server of its own). The fixture reads the URL, the
login and the kill command from the banner and runs that command as printed; each test then waits,
with a deadline, for one place where a user would see the failover: the dashboard, the cluster
page, the entry URL `/go/`, the alerts page, the mail sink, the trap log. Right after the kill a
second demo starts in another run folder (a new database, the first demo's fence now at epoch 2):
it must come up healthy promptly on state of its own. The last tests press Ctrl-C and read the
logs of the run folder for tracebacks and errors.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import html
import json
import os
import re
import signal
import subprocess
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

from cluster.heartbeat.state import fence_key
from tests.support.agents import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT_REDIS_DB = 7  # named by the demos' REDIS_URL; the session control plane uses database 0
BANNER_DEADLINE_S = 90  # migrate on a fresh SQLite database, four agents, both clusters healthy
FAILOVER_DEADLINE_S = 30  # from the kill: missed heartbeats, lease wait, promotion, notifications
PROMPTLY_S = 20  # from the workers ready to both primaries serving (a stale fence refused grants 25 s+)
FRESH_HEARTBEAT_S = 30  # last-seen times are flushed to the database every 10 s
STOP_DEADLINE_S = 45  # the demo gives each of its four stop tiers 10 s
LOGS_READ = ("web", "beat", "worker-heartbeat", "worker-failover", "worker-default", "worker-replication", "apps")
T = TypeVar("T")


@dataclass
class Started:
    """One `make run` in its own run folder, its terminal output in a file."""

    process: subprocess.Popen
    output: Path
    run_dir: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def redis_url(self) -> str:
        match = re.search(r"^demo: Redis: the demo's own redis-server at (\S+) ", self.text(), re.MULTILINE)
        assert match, self.text()
        return match.group(1)

    def ctrl_c(self) -> None:
        """What Ctrl-C in the terminal does: SIGINT to the foreground group, make and the demo."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)


@dataclass
class Demo:
    run: Started
    second: Started
    env: dict[str, str]
    url: str
    kill_command: str
    mail_dir: Path
    trap_log: Path | None
    browser: urllib.request.OpenerDirector
    entry_page_before: str
    primary_before: str = ""
    epoch_before: int = 0
    killed_at: float = 0.0

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
                logs = sorted((self.run.run_dir / "logs").glob("*.log"))
                raise AssertionError(f"{what}: not within {FAILOVER_DEADLINE_S} s of the kill; logs in {logs}")
            time.sleep(0.25)


def environment_redis_url() -> str:
    return urllib.parse.urlsplit(settings.REDIS_URL)._replace(path=f"/{ENVIRONMENT_REDIS_DB}").geturl()


def user_environment() -> dict[str, str]:
    """The suite's environment as a user's shell would have it: make run's defaults (SQLite, the
    encryption key made in the run folder), no outer make's flags, and a REDIS_URL that names the
    suite's Redis (which the demo must leave alone)."""
    env = {**os.environ, "REDIS_URL": environment_redis_url()}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "FIELD_ENCRYPTION_KEYS", "DMS_RUN_DIR", "PORT",
                 "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):  # fmt: skip
        env.pop(name, None)
    return env


def make_run(run_dir: Path, env: dict[str, str]) -> Started:
    output = run_dir.parent / f"{run_dir.name}-output.txt"
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env={**env, "DMS_RUN_DIR": str(run_dir), "PORT": str(free_port())},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    return Started(process, output, run_dir)


def stop(started: Started, pids: dict[str, int]) -> None:
    """Ctrl-C if it still runs, then SIGKILL whatever a failed stop left behind."""
    if started.process.poll() is None:
        started.ctrl_c()
        try:
            started.process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(started.process.pid, signal.SIGKILL)
            started.process.wait()
    for pid in {**pids, **recorded_pids(started.run_dir)}.values():
        for member in group_members(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)


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


def page_text(page: str) -> str:
    """What a reader sees: the page without its tags, whitespace collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def cluster_card(dashboard: str, name: str) -> tuple[str, int]:
    """(primary, epoch) as the dashboard's card of cluster `name` shows them."""
    for card in dashboard.split('<article class="card cluster-card"')[1:]:
        if f">{name}</a>" in card:
            primary = re.search(r'<div class="name">([^<]+)</div>', card)  # the Primary box comes first
            epoch = re.search(r"Epoch <b>(\d+)</b>", card)
            assert primary and epoch, card
            return primary.group(1), int(epoch.group(1))
    raise AssertionError(f"no card for {name} on the dashboard")


def heartbeat_ages(text: str, names: list[str]) -> dict[str, float | None]:
    """Each server's "Last heartbeat … N s ago" in a page's text, in seconds (None: never): the
    first one after the server's name with no other server named in between."""
    units = {"s": 1, "min": 60, "h": 3600, "d": 86400}
    others = "|".join(re.escape(name) for name in names)
    ages: dict[str, float | None] = {}
    for name in names:
        age = r"Last heartbeat (?:[^(]*?\()?(—|never|(\d+) (s|min|h|d) ago)"
        match = re.search(rf"\b{re.escape(name)}\b(?:(?!\b(?:{others})\b).)*?{age}", text)
        assert match, f"no last heartbeat shown for {name}: {text}"
        ages[name] = int(match.group(2)) * units[match.group(3)] if match.group(2) else None
    return ages


def entry_page(url: str) -> tuple[str, str]:
    """Follow `/go/` as a browser does, with no session: (appliance named, role shown) on the page."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        page = answer.read().decode()
    name = re.search(r"<h1>([^<]+)</h1>", page)
    role = re.search(r'<div class="role[^"]*"><strong>([^<]+)</strong>', page)
    assert name and role, page
    return name.group(1), role.group(1)


def wait_for_banner(started: Started) -> str:
    deadline = time.monotonic() + BANNER_DEADLINE_S
    while True:
        text = started.text()
        if "Stop everything: Ctrl-C" in text:
            return text
        assert started.process.poll() is None, (
            f"the demo exited ({started.process.returncode}) before its banner:\n{text}"
        )
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
    env = user_environment()
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    run = make_run(tmp_path_factory.mktemp("demo-run"), env)
    second: Started | None = None
    pids: dict[str, int] = {}
    try:
        text = wait_for_banner(run)
        pids = recorded_pids(run.run_dir)
        url = banner_field(text, "Dashboard")
        username, password = banner_field(text, "Login").split(" / ")
        kill = re.search(r"^  (.*-m demo kill-primary dmm-demo)$", text, re.MULTILINE)
        assert kill, text
        traps = banner_field(text, "Trap log")
        entry = banner_field(text, "Entry URL").split()[0]
        browser = log_in(url, username, password)
        primary_before, epoch_before = cluster_card(browser.open(url, timeout=10).read().decode(), "dmm-demo")
        with urllib.request.urlopen(entry, timeout=10) as answer:
            entry_page_before = answer.read().decode()
        killed = subprocess.run(
            kill.group(1), shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        killed_at = time.monotonic()
        assert killed.returncode == 0, killed.stderr
        assert f"Killed {primary_before}" in killed.stdout
        # Another user's demo, started now: its grants begin while this one's fence moves to epoch 2.
        second = make_run(tmp_path_factory.mktemp("second-demo-run"), env)
        yield Demo(
            run=run,
            second=second,
            env=env,
            url=url,
            kill_command=kill.group(1),
            mail_dir=path_in_banner(banner_field(text, "Mail sink")),
            trap_log=None if traps.startswith("none") else path_in_banner(traps),
            browser=browser,
            entry_page_before=entry_page_before,
            primary_before=primary_before,
            epoch_before=epoch_before,
            killed_at=killed_at,
        )
    finally:
        if second is not None:
            second.ctrl_c()  # both stop at once
        stop(run, pids)
        if second is not None:
            stop(second, {})


def test_the_entry_url_led_to_the_primary_appliance_page_before_the_kill(demo: Demo) -> None:
    page = page_text(demo.entry_page_before)

    assert f"{demo.primary_before} Primary Serving users at epoch {demo.epoch_before}." in page, page
    assert "Digital Media Manager · cluster dmm-demo" in page


def test_the_dashboard_shows_the_secondary_promoted_at_the_next_epoch(demo: Demo) -> None:
    def promoted() -> tuple[str, int] | None:
        primary, epoch = cluster_card(demo.get(""), "dmm-demo")
        return (primary, epoch) if primary != demo.primary_before else None

    primary, epoch = demo.eventually(promoted, "a new dmm-demo primary on the dashboard")
    assert {primary, demo.primary_before} == {"dmm-demo-a", "dmm-demo-b"}
    assert epoch == demo.epoch_before + 1


def test_the_cluster_page_shows_the_failover(demo: Demo) -> None:
    link = re.search(r'href="(/clusters/\d+/)"[^>]*>dmm-demo</a>', demo.get(""))
    assert link, "no link to dmm-demo's page on the dashboard"

    def failed_over() -> str | None:
        text = page_text(demo.get(link.group(1).lstrip("/")))
        return text if f"Epoch {demo.epoch_before + 1} " in text else None

    text = demo.eventually(failed_over, "dmm-demo's page at the next epoch")
    new_primary = ({"dmm-demo-a", "dmm-demo-b"} - {demo.primary_before}).pop()
    assert f"Primary: {new_primary}" in text, text


def test_the_pages_show_heartbeat_ages_of_seconds(demo: Demo) -> None:
    """The last-seen flush reaches the database on SQLite too: every server heard within the last
    seconds (the killed one until the kill), none "never" or minutes ago."""
    servers = ["dmm-demo-a", "dmm-demo-b", "sns-demo-a", "sns-demo-b"]
    alive_servers = [name for name in servers if name != demo.primary_before]

    def fresh() -> dict[str, float | None] | None:
        ages = heartbeat_ages(page_text(demo.get("")), servers)
        seen = all(age is not None for age in ages.values())
        return ages if seen and all(ages[name] <= FRESH_HEARTBEAT_S for name in alive_servers) else None

    ages = demo.eventually(fresh, f"heartbeat ages of at most {FRESH_HEARTBEAT_S} s on the dashboard")
    assert ages[demo.primary_before] < 60, ages  # heard until the kill, well under a minute ago
    link = re.search(r'href="(/clusters/\d+/)"[^>]*>dmm-demo</a>', demo.get(""))
    assert link
    on_cluster_page = heartbeat_ages(page_text(demo.get(link.group(1).lstrip("/"))), ["dmm-demo-a", "dmm-demo-b"])
    assert all(age is not None and age < 60 for age in on_cluster_page.values()), on_cluster_page


def test_a_refresh_of_the_entry_url_lands_on_the_new_primary(demo: Demo) -> None:
    new_primary = ({"dmm-demo-a", "dmm-demo-b"} - {demo.primary_before}).pop()
    entry = demo.url + "go/dmm-demo/"

    def on_new_primary() -> tuple[str, str] | None:
        landed = entry_page(entry)
        return landed if landed == (new_primary, "Primary") else None

    demo.eventually(on_new_primary, f"{entry} landing on {new_primary}'s page saying Primary")


def test_the_demo_keeps_its_encryption_key_in_its_run_folder_and_no_secret_in_its_database(demo: Demo) -> None:
    key = demo.run.run_dir / "field-encryption-key"
    tokens = [agent["token"] for agent in json.loads((demo.run.run_dir / "demo.json").read_text())["agents"].values()]
    database = b"".join(path.read_bytes() for path in demo.run.run_dir.glob("dms.sqlite3*"))

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


def test_a_demo_started_after_another_comes_up_healthy_promptly_on_a_redis_of_its_own(demo: Demo) -> None:
    """The second demo (same checkout, new database) started right after the first one's kill. On a
    shared Redis the first demo's fence at epoch 2 refuses the second's epoch-1 grants, and the two
    demos' workers take each other's tasks."""
    text = wait_for_banner(demo.second)

    assert "(both clusters healthy," in text, text
    progress = re.findall(r"^demo: +([\d.]+) s  (.*)$", text, re.MULTILINE)
    assert progress and "not serving" not in progress[-1][1], progress
    assert float(progress[-1][0]) < PROMPTLY_S, progress
    first, second = redis.Redis.from_url(demo.run.redis_url()), redis.Redis.from_url(demo.second.redis_url())
    assert first.info("server")["run_id"] != second.info("server")["run_id"]
    assert int(first.hget(fence_key(1), "epoch") or 0) == demo.epoch_before + 1  # dmm-demo is cluster 1 in both
    assert int(second.hget(fence_key(1), "epoch") or 0) == 1
    assert redis.Redis.from_url(demo.env["REDIS_URL"]).dbsize() == 0, "a demo wrote to the environment's Redis"
    demo.second.ctrl_c()  # stops while the first demo's tests go on; the fixture waits for it


def test_ctrl_c_stops_every_process_the_demo_started(demo: Demo) -> None:
    pids = recorded_pids(demo.run.run_dir)
    assert {"demo", "web", "apps", "beat", "mail", "redis", "worker-default"} <= set(pids), pids
    demo.run.ctrl_c()
    # make dies of the SIGINT it got, as on any Ctrl-C, once the demo has stopped everything.
    assert demo.run.process.wait(STOP_DEADLINE_S) in (0, -signal.SIGINT), demo.run.text()[-3000:]
    left = {name: group_members(pid) for name, pid in pids.items() if alive(pid) or group_members(pid)}
    assert not left, f"still running after Ctrl-C: {left}"
    assert not list((demo.run.run_dir / "pids").glob("*.pid"))
    assert "everything the demo started is stopped" in demo.run.text()


def test_the_logs_hold_no_traceback_error_or_server_error(demo: Demo) -> None:
    """From the first start to Ctrl-C, through the failover: the web app, the workers, beat and the
    appliances' pages logged no exception, no ERROR line and answered no 5xx."""
    bad = re.compile(r'Traceback|\bERROR\b|\bCRITICAL\b|" 5\d\d \d+$')
    logs = {name: (demo.run.run_dir / "logs" / f"{name}.log").read_text().splitlines() for name in LOGS_READ}
    found = {name: [line for line in lines if bad.search(line)] for name, lines in logs.items()}
    assert not {name: lines for name, lines in found.items() if lines}, found
