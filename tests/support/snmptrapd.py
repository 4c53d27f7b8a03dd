"""A real net-snmp snmptrapd (Debian's `snmptrapd` package) on a free loopback port, for tests.

    with Snmptrapd(tmp_path, sender_engine_id=ENGINE_ID) as trapd:
        ...send to ("127.0.0.1", trapd.port)...
        trap = trapd.wait_for(lambda t: t.notification_oid == "1.3.6.1.4.1.32473.1.0.1")

It accepts a v2c community and one SNMPv3 authPriv user, logs every trap and inform it accepts to a
file in a machine-readable layout (`-F`), and `traps()` parses that file. `stop()` and `start()`
simulate a receiver that is down and back (same port). Waits poll with deadlines; nothing sleeps
blindly.

SNMPv3 needs the user twice in snmptrapd.conf (DESIGN §9):
- `createUser -e <sender engine ID> ...`: for traps, the sender is the authoritative engine, so the
  receiver must know its engine ID in advance to localize the keys;
- `createUser ...` without -e: for informs, snmptrapd is the authoritative engine (the sender
  discovers snmptrapd's engine ID first), so the keys are localized to snmptrapd's own ID.

With `load_mib=True` snmptrapd loads alerts/mibs/DMS-FAILOVER-MIB.txt. Debian ships no IETF MIB
modules (they are in non-free's snmp-mibs-downloader), and net-snmp only needs the OID tree of
SNMPv2-SMI (it knows the SMIv2 macros and base types), so the MIB path starts with the minimal
stand-ins for SNMPv2-SMI, -TC and -CONF in alerts/mibs/base-stubs/. With the MIB loaded snmptrapd prints enumerations by
name (`INTEGER: critical(3)`) and DmsUtf8String values as text rather than hex.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SNMPTRAPD = shutil.which("snmptrapd") or "/usr/sbin/snmptrapd"
MIBS_DIR = Path(__file__).resolve().parents[2] / "alerts" / "mibs"
SNMP_TRAP_OID_0 = "1.3.6.1.6.3.1.1.4.1.0"

RECORD_START = "<<TRAP>> "
RECORD_END = "<<END>>"

BASE_MIB_STUBS = MIBS_DIR / "base-stubs"  # the IETF modules our MIB imports: Debian ships none


def available() -> bool:
    return os.access(SNMPTRAPD, os.X_OK)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _udp_port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


@dataclass(frozen=True)
class V3User:
    name: str = "dmsuser"
    auth_protocol: str = "SHA"  # as snmptrapd.conf spells it: MD5, SHA, SHA-224 ... SHA-512
    auth_key: str = "dms-auth-key-1"
    priv_protocol: str = "AES"  # DES, AES (AES-128), AES192, AES256
    priv_key: str = "dms-priv-key-1"


@dataclass
class Trap:
    """One notification snmptrapd accepted."""

    pdu: str  # "TRAP2" or "INFORM"
    version: str  # "v2c" or "v3"
    security: str  # "community public" or "user dmsuser"
    varbinds: dict[str, object] = field(default_factory=dict)  # numeric OID (no leading dot) -> value
    raw: str = ""

    @property
    def notification_oid(self) -> str | None:
        value = self.varbinds.get(SNMP_TRAP_OID_0)
        return str(value) if value is not None else None

    def value(self, oid: str) -> object:
        return self.varbinds[oid]


_HEADER = re.compile(r"^(?P<pdu>\S+), SNMP (?P<version>v\w+), (?P<security>.*?)(?:, context\b.*)?$")
_VARBIND_START = re.compile(r"\.?(?P<oid>\d+(?:\.\d+)*) = (?:(?P<type>[A-Za-z0-9-]+): ?)?")
_NEXT_VARBIND = re.compile(r"\t(?=\.\d+(?:\.\d+)* = )")


def _parse_value(type_: str | None, text: str) -> object:
    text = text.rstrip("\n")
    if type_ in ("INTEGER", "Gauge32", "Counter32", "Counter64", "Unsigned32", "Integer32"):
        match = re.search(r"-?\d+(?=\)?\s*$)", text.strip())  # "3" or "critical(3)"
        return int(match.group(0)) if match else text
    if type_ == "Timeticks":
        match = re.match(r"\((\d+)\)", text.strip())
        return int(match.group(1)) if match else text
    if type_ == "OID":
        return text.strip().lstrip(".")
    if type_ == "Hex-STRING":
        data = bytes.fromhex(re.sub(r"\s+", "", text))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data
    if type_ is None and text.strip() == '""':
        return ""
    return text.strip()


def _read_quoted(body: str, pos: int) -> tuple[str, int]:
    """A net-snmp quoted string starting at body[pos] == '"': (its text, position after it)."""
    out = []
    i = pos + 1
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return "".join(out), i


def parse_varbinds(body: str) -> dict[str, object]:
    varbinds: dict[str, object] = {}
    pos = 0
    while pos < len(body):
        match = _VARBIND_START.match(body, pos)
        if not match:
            break
        oid, type_ = match.group("oid"), match.group("type")
        pos = match.end()
        if type_ in ("STRING", None) and body.startswith('"', pos):
            value, pos = _read_quoted(body, pos)
            varbinds[oid] = value
            following = _NEXT_VARBIND.search(body, pos)
            pos = following.end() if following else len(body)
            continue
        following = _NEXT_VARBIND.search(body, pos)
        end = following.start() if following else len(body)
        varbinds[oid] = _parse_value(type_, body[pos:end])
        pos = following.end() if following else len(body)
    return varbinds


def parse_log(text: str) -> list[Trap]:
    traps = []
    for chunk in text.split(RECORD_START)[1:]:
        if RECORD_END not in chunk:
            continue  # still being written
        record = chunk.split(RECORD_END, 1)[0].rstrip("\n")
        header, _, body = record.partition("\t")
        match = _HEADER.match(header.strip())
        if not match:
            continue
        security = match.group("security").strip()
        traps.append(
            Trap(
                pdu=match.group("pdu"),
                version=match.group("version"),
                security=security,
                varbinds=parse_varbinds(body),
                raw=record,
            )
        )
    return traps


class Snmptrapd:
    """A snmptrapd process under test control. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        workdir: Path,
        *,
        community: str = "public",
        user: V3User | None = None,
        sender_engine_id: str | None = None,
        load_mib: bool = False,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.community = community
        self.user = user or V3User()
        self.sender_engine_id = sender_engine_id
        self.load_mib = load_mib
        self.port = port or free_udp_port()
        self.conf = self.workdir / "snmptrapd.conf"
        self.log = self.workdir / "snmptrapd.log"
        self.persistent_dir = self.workdir / "persist"  # snmptrapd's engine ID and boots, not /var/lib/snmp
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle

    def write_conf(self) -> None:
        user = self.user
        lines = [f"authCommunity log {self.community}"]
        keys = f"{user.auth_protocol} {user.auth_key} {user.priv_protocol} {user.priv_key}"
        if self.sender_engine_id:
            lines.append(f"createUser -e 0x{self.sender_engine_id.removeprefix('0x')} {user.name} {keys}")
        lines.append(f"createUser {user.name} {keys}")
        lines.append(f"authUser log {user.name} authPriv")
        self.conf.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        if self.load_mib:
            mib_args = ["-M", f"{BASE_MIB_STUBS}:{MIBS_DIR}", "-m", "DMS-FAILOVER-MIB"]
        else:
            mib_args = ["-m", ""]  # no MIBs: avoids hundreds of missing-module lines
        return [
            SNMPTRAPD,
            "-f",  # foreground
            "-C",  # no default config files, only -c
            "-c", str(self.conf),
            *mib_args,
            "-Lf", str(self.log),
            "-On",  # numeric OIDs
            "-F", f"{RECORD_START}%P\t%v\n{RECORD_END}\n",
            f"udp:127.0.0.1:{self.port}",
        ]  # fmt: skip

    def start(self, timeout: float = 5.0) -> Snmptrapd:
        if self.running:
            return self
        self.persistent_dir.mkdir(exist_ok=True)
        self.write_conf()
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(self.persistent_dir)}
        self.process = subprocess.Popen(
            self.command(), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not _udp_port_in_use(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"snmptrapd exited with {self.process.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"snmptrapd did not listen on udp:{self.port} within {timeout}s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Snmptrapd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what it received

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def traps(self) -> list[Trap]:
        return parse_log(self.log_text())

    def wait_for(self, predicate: Callable[[Trap], bool] = lambda trap: True, timeout: float = 5.0) -> Trap:
        """The first received trap matching `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for trap in self.traps():
                if predicate(trap):
                    return trap
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching trap within {timeout}s; snmptrapd log:\n{self.log_text()[-4000:]}")
            time.sleep(0.01)

    def matching(self, predicate: Callable[[Trap], bool]) -> list[Trap]:
        return [trap for trap in self.traps() if predicate(trap)]


@pytest.fixture
def snmptrapd_factory(tmp_path: Path) -> Iterator[Callable[..., Snmptrapd]]:
    """Starts snmptrapd instances for one test (`factory(sender_engine_id=..., load_mib=...)`);
    all are stopped afterwards. Skips the test where Debian's snmptrapd is not installed."""
    if not available():
        pytest.skip("snmptrapd is not installed (Debian package snmptrapd)")
    started: list[Snmptrapd] = []

    def factory(**kwargs: object) -> Snmptrapd:
        trapd = Snmptrapd(tmp_path / f"snmptrapd-{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(trapd)
        return trapd.start()

    yield factory
    for trapd in started:
        trapd.stop()
