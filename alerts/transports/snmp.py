"""SNMP notifications (DESIGN §9): one trap or inform per call, sent with pysnmp 7's asyncio API.

Every send builds a fresh SnmpEngine and a fresh target: reusing a target across community strings
on one engine was seen to send twice, and a rule's credentials can change between sends. The one
exception is the synchronous send of a v2c *trap* (the delivery task's path): building an engine
costs pysnmp ~150-300 ms of MIB loading, which capped one worker at ~4 traps per second
(bench/notify.py), so each worker process keeps one engine per exact target and community
(never shared between communities) on an event loop thread of its own. v3 traps keep fresh
engines: each one takes a new engine-boots value, and long-lived engines in several processes
would send lower boots than the receiver has seen and be dropped (RFC 3414 timeliness). The engine
always carries the product's stable engine ID, because an SNMPv3 receiver accepts a trap only from
an engine ID it was told about (`createUser -e <engineID> ...` in snmptrapd.conf). For an inform the
receiver is the authoritative engine; pysnmp discovers its engine ID with a first probe (RFC 3414
§4), so nothing about the receiver needs configuring here.

The community and the v3 keys are secrets (DESIGN §4 invariant 7): they are kept out of reprs, logs
and error messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pysnmp.entity import config as snmp_config
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_AUTH_NONE,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    USM_PRIV_NONE,
    CommunityData,
    ContextData,
    Integer32,
    ObjectIdentifier,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    TimeTicks,
    UdpTransportTarget,
    Unsigned32,
    UsmUserData,
    send_notification,
)

from alerts.transports import snmp_oids as oids
from alerts.transports.base import DELIVERED, SENT, Notification, Outcome, Transport, TransportError

logger = logging.getLogger(__name__)

AUTH_PROTOCOLS = {
    "none": USM_AUTH_NONE,
    "md5": USM_AUTH_HMAC96_MD5,
    "sha": USM_AUTH_HMAC96_SHA,
    "sha224": USM_AUTH_HMAC128_SHA224,
    "sha256": USM_AUTH_HMAC192_SHA256,
    "sha384": USM_AUTH_HMAC256_SHA384,
    "sha512": USM_AUTH_HMAC384_SHA512,
}
# AES-192/256 have two incompatible key localizations. net-snmp's "AES192"/"AES256" (what
# snmptrapd.conf spells) are the Blumenthal draft's, so those are the ones named here; Cisco's
# variant ("AES192C" in net-snmp) is not offered.
PRIV_PROTOCOLS = {
    "none": USM_PRIV_NONE,
    "des": USM_PRIV_CBC56_DES,
    "aes128": USM_PRIV_CFB128_AES,
    "aes192": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "aes256": USM_PRIV_CFB256_AES_BLUMENTHAL,
}
VERSIONS = ("v2c", "v3")
MODES = ("trap", "inform")

# USM derives keys from passphrases of at least 8 characters (RFC 3414 §11.2); net-snmp refuses
# shorter ones, so a shorter key is a configuration error rather than a delivery failure.
MIN_KEY_LENGTH = 8

# pysnmp error indications that retrying cannot fix: the receiver answered, and said no.
PERMANENT_INDICATIONS = {
    "UnknownUserName",
    "UnknownSecurityName",
    "UnsupportedSecLevel",
    "UnsupportedSecurityLevel",
    "WrongDigest",
    "DecryptionError",
    "AuthenticationError",
    "UnknownEngineID",
    "UnsupportedAuthProtocol",
    "UnsupportedPrivProtocol",
}

_PROCESS_STARTED = time.monotonic()


@dataclass(frozen=True)
class SnmpTarget:
    """Where and how to send: a rule's SNMP settings, as plain values."""

    host: str
    port: int = 162
    version: Literal["v2c", "v3"] = "v2c"
    community: str = field(default="", repr=False)
    user: str = ""
    auth_protocol: str = "none"
    auth_key: str = field(default="", repr=False)
    priv_protocol: str = "none"
    priv_key: str = field(default="", repr=False)
    mode: Literal["trap", "inform"] = "trap"
    timeout: float = 3.0  # seconds to wait for an inform's acknowledgement, per try
    retries: int = 1  # extra tries of an inform within one attempt (0: a single request)

    def validate(self) -> None:
        """Raise TransportError(permanent=True) when no send with these settings can succeed."""
        problems = []
        if not self.host:
            problems.append("no host")
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port} out of range")
        if self.version not in VERSIONS:
            problems.append(f"unknown SNMP version {self.version!r}")
        if self.mode not in MODES:
            problems.append(f"unknown mode {self.mode!r}")
        if self.timeout <= 0 or self.retries < 0:
            problems.append("timeout must be positive and retries not negative")
        if self.version == "v2c" and not self.community:
            problems.append("SNMPv2c needs a community")
        if self.version == "v3":
            if not self.user:
                problems.append("SNMPv3 needs a user name")
            if self.auth_protocol not in AUTH_PROTOCOLS:
                problems.append(f"unknown auth protocol {self.auth_protocol!r}")
            if self.priv_protocol not in PRIV_PROTOCOLS:
                problems.append(f"unknown privacy protocol {self.priv_protocol!r}")
            if self.priv_protocol != "none" and self.auth_protocol == "none":
                problems.append("privacy needs authentication (no authPriv without auth)")
            if self.auth_protocol != "none" and len(self.auth_key) < MIN_KEY_LENGTH:
                problems.append(f"auth key shorter than {MIN_KEY_LENGTH} characters")
            if self.priv_protocol != "none" and len(self.priv_key) < MIN_KEY_LENGTH:
                problems.append(f"privacy key shorter than {MIN_KEY_LENGTH} characters")
        if problems:
            raise TransportError("SNMP settings: " + "; ".join(problems), permanent=True)

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.community, self.auth_key, self.priv_key) if s]

    def describe(self) -> str:
        """For logs and messages: no secrets."""
        who = f"user {self.user}" if self.version == "v3" else "community ***"
        return f"{self.mode} {self.version} to {self.host}:{self.port} ({who})"


def parse_engine_id(engine_id: bytes | str) -> bytes:
    """An SnmpEngineID from bytes or hex ("80007ed905...", "0x80...", "80:00:7e:..")."""
    if isinstance(engine_id, str):
        text = engine_id.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise TransportError(f"SNMP engine ID {engine_id!r} is not hex", permanent=True)
    else:
        raw = bytes(engine_id)
    if not 5 <= len(raw) <= 32:  # SnmpEngineID ::= OCTET STRING (SIZE(5..32)), RFC 3411
        raise TransportError(f"SNMP engine ID must be 5 to 32 octets, not {len(raw)}", permanent=True)
    return raw


def generate_engine_id() -> str:
    """A new engine ID in the RFC 3411 format: enterprise 32473 (the MIB's), format 5 (octets),
    eight random octets. Generate it once per installation and keep it (DESIGN §9)."""
    enterprise = 0x80000000 | oids.ENTERPRISE[-1]
    return (enterprise.to_bytes(4, "big") + b"\x05" + os.urandom(8)).hex()


def _text(value: str, limit: int) -> bytes:
    """UTF-8, cut to at most `limit` octets at a character boundary (the MIB's SIZE)."""
    encoded = value.encode("utf-8")
    if len(encoded) <= limit:
        return encoded
    return encoded[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def notification_varbinds(notification: Notification) -> list[tuple[oids.Oid, Any]]:
    """sysUpTime.0, snmpTrapOID.0 and the six DMS-FAILOVER-MIB objects (instance .0), in order."""
    try:
        trap_oid = oids.NOTIFICATION_OIDS[notification.event_type]
    except KeyError:
        raise TransportError(f"no SNMP notification for event type {notification.event_type!r}", permanent=True)
    try:
        severity = oids.SEVERITY_VALUES[notification.severity]
    except KeyError:
        raise TransportError(f"unknown severity {notification.severity!r}", permanent=True)
    if not 0 <= notification.event_id <= 0xFFFFFFFF:
        raise TransportError(f"event id {notification.event_id} does not fit dmsEventId (Unsigned32)", permanent=True)

    # The sender's uptime in hundredths of a second: the process's, as every send has a new engine.
    uptime = int((time.monotonic() - _PROCESS_STARTED) * 100) % 2**32
    return [
        (oids.SYS_UP_TIME_0, TimeTicks(uptime)),
        (oids.SNMP_TRAP_OID_0, ObjectIdentifier(oids.dotted(trap_oid))),
        (oids.EVENT_ID + (0,), Unsigned32(notification.event_id)),
        (oids.EVENT_TYPE + (0,), OctetString(_text(notification.event_type, oids.MAX_TYPE_OCTETS))),
        (oids.EVENT_SEVERITY + (0,), Integer32(severity)),
        (oids.EVENT_CLUSTER + (0,), OctetString(_text(notification.cluster, oids.MAX_TEXT_OCTETS))),
        (oids.EVENT_SERVER + (0,), OctetString(_text(notification.server, oids.MAX_TEXT_OCTETS))),
        (oids.EVENT_MESSAGE + (0,), OctetString(_text(notification.message, oids.MAX_TEXT_OCTETS))),
    ]


def build_varbinds(notification: Notification) -> list[ObjectType]:
    """The varbinds as pysnmp objects, numeric (no MIB lookups at send time)."""
    return [ObjectType(ObjectIdentity(oids.dotted(oid)), value) for oid, value in notification_varbinds(notification)]


T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code (a Celery task, a view).

    Uses a fresh event loop; if this thread already runs one (called from async code by mistake),
    the loop runs in a helper thread instead of failing with "asyncio.run() cannot be called from a
    running event loop".
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=runner, name="snmp-send")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


class _TrapEngines:
    """Long-lived engines for v2c traps, one per (engine ID, target, community), driven by one event
    loop thread per process (created after a fork, never inherited). At most MAX engines (one UDP
    socket each); the least recently used is closed first. An engine whose send failed is dropped."""

    MAX = 64
    TIMEOUT_S = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engines: OrderedDict[tuple, SnmpEngine] = OrderedDict()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                self._pid, self._engines = os.getpid(), OrderedDict()
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="snmp-traps", daemon=True)
                self._thread.start()
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        try:
            return future.result(self.TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise TransportError(f"SNMP trap not sent within {self.TIMEOUT_S:g} s") from None

    def get(self, key: tuple, engine_id: bytes) -> SnmpEngine:  # on the loop thread
        engine = self._engines.pop(key, None) or SnmpEngine(snmpEngineID=OctetString(engine_id))
        self._engines[key] = engine
        while len(self._engines) > self.MAX:
            self._engines.popitem(last=False)[1].close_dispatcher()
        return engine

    def discard(self, key: tuple) -> None:  # on the loop thread
        engine = self._engines.pop(key, None)
        if engine is not None:
            engine.close_dispatcher()


_TRAP_ENGINES = _TrapEngines()


class SnmpTransport(Transport):
    """Sends one SNMP trap ("sent") or inform ("delivered") per call. See Transport for the contract."""

    def __init__(self, target: SnmpTarget, engine_id: bytes | str) -> None:
        self.target = target
        self.engine_id = parse_engine_id(engine_id)

    def __repr__(self) -> str:
        return f"SnmpTransport({self.target!r}, engine_id={self.engine_id.hex()!r})"

    def notify(self, notification: Notification) -> Outcome:
        if self.target.version == "v2c" and self.target.mode == "trap":
            return _TRAP_ENGINES.run(self._notify(notification, reuse=True))
        return run_sync(self.anotify(notification))

    async def anotify(self, notification: Notification) -> Outcome:
        """The same as notify(), from a running event loop (bulk sends: gather several of these)."""
        return await self._notify(notification, reuse=False)

    async def _notify(self, notification: Notification, reuse: bool) -> Outcome:
        target = self.target
        target.validate()
        varbinds = build_varbinds(notification)
        key = (self.engine_id, target)
        engine = (
            _TRAP_ENGINES.get(key, self.engine_id) if reuse else SnmpEngine(snmpEngineID=OctetString(self.engine_id))
        )
        kept = False
        try:
            error_indication, error_status, error_index, _ = await self._send(engine, varbinds)
            if target.mode == "trap":
                # A trap resolves as soon as it is queued; make sure the datagram left before the
                # engine (and its socket) goes away.
                await self._wait_flushed(engine)
            kept = reuse and not error_indication
        except TransportError:
            raise
        except (PySnmpError, OSError, ValueError) as exc:
            # ValueError and PySnmpError come from configuration pysnmp refuses (a missing
            # cipher library: "Ciphering services not available"): retrying will not help.
            # OSError is the network (unreachable, no route): worth retrying.
            permanent = not isinstance(exc, OSError) and "Bad IPv4/UDP transport address" not in str(exc)
            raise TransportError(self._scrub(f"SNMP {target.describe()} failed: {exc}"), permanent=permanent) from None
        finally:
            if reuse and not kept:
                _TRAP_ENGINES.discard(key)
            elif not reuse:
                engine.close_dispatcher()
                await asyncio.sleep(0)  # let the closed socket's transport finish closing

        if error_indication:
            kind = type(error_indication).__name__
            message = self._scrub(f"SNMP {target.describe()} failed: {error_indication}")
            logger.warning("event %s: %s", notification.event_id, message)
            raise TransportError(message, permanent=kind in PERMANENT_INDICATIONS)
        if error_status:
            message = f"SNMP {target.describe()} answered {error_status.prettyPrint()} at varbind {error_index}"
            logger.warning("event %s: %s", notification.event_id, message)
            raise TransportError(self._scrub(message))
        outcome = SENT if target.mode == "trap" else DELIVERED
        logger.info("event %s: SNMP %s %s", notification.event_id, target.describe(), outcome)
        return outcome

    async def _send(self, engine: SnmpEngine, varbinds: list[ObjectType]) -> tuple[Any, Any, Any, Any]:
        target = self.target
        auth: CommunityData | UsmUserData
        if target.version == "v2c":
            auth = CommunityData(target.community, mpModel=1)
        else:
            auth = UsmUserData(
                target.user,
                authKey=target.auth_key or None,
                privKey=target.priv_key or None,
                authProtocol=AUTH_PROTOCOLS[target.auth_protocol],
                privProtocol=PRIV_PROTOCOLS[target.priv_protocol],
            )
        transport_target = await UdpTransportTarget.create(
            (target.host, target.port), timeout=target.timeout, retries=target.retries
        )
        return await send_notification(
            engine, auth, transport_target, ContextData(), target.mode, *varbinds, lookupMib=False
        )

    @staticmethod
    async def _wait_flushed(engine: SnmpEngine, deadline_s: float = 2.0) -> None:
        # pysnmp opens the UDP endpoint in a background task and queues what is sent before it is
        # open; the queue is written out when the endpoint is made.
        transport = snmp_config.get_transport(engine, UdpTransportTarget.TRANSPORT_DOMAIN)
        deadline = time.monotonic() + deadline_s

        def pending() -> bool:
            return getattr(transport, "transport", None) is None or bool(getattr(transport, "_writeQ", None))

        while transport is not None and pending():
            if time.monotonic() > deadline:
                raise TransportError("SNMP trap could not be handed to the network in time")
            await asyncio.sleep(0.001)

    def _scrub(self, text: str) -> str:
        for secret in self.target.secrets:
            text = text.replace(secret, "***")
        return text
