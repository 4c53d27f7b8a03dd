"""The agent's decision logic (DESIGN §4a), free of I/O so it can be unit-tested and shared.

`AgentCore` owns role, epoch, seq, candidacy, the lease and the granter bookkeeping of one
appliance. It never reads a clock by itself: callers hand it clock functions (the real agent's
"mono" is `agent.clock.mono`, CLOCK_BOOTTIME) and readings taken at the right moment (a heartbeat's
receipt time is taken before anything else). Persistence
and the serving-interval log are injected callables, so the real agent writes them to disk and the
simulator keeps everything in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ROLES = ("primary", "secondary", "candidate", "unconfigured")
COMMAND_ROLES = ("primary", "secondary", "candidate")

DEFAULT_INTERVAL_S = 2.0
DEFAULT_MAX_GRANT_DELAY = 0.25
DEFAULT_MAX_CLOCK_SKEW = 0.1

log = logging.getLogger("agent.core")


class BadRequest(ValueError):
    """The request body is malformed; answered 400 with this message."""


class Refused(Exception):
    """A command is not acceptable in the agent's current state; answered 409 with `answer`."""

    def __init__(self, message: str, answer: dict[str, Any]) -> None:
        super().__init__(message)
        self.answer = {"error": message, **answer}


# --- body validation -------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # bool is an int subclass; `true` is never a valid epoch or duration.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def get_int(body: Mapping[str, Any], key: str, *, minimum: int = 0) -> int:
    """Return body[key] as an int ≥ minimum or raise BadRequest naming the field."""
    if key not in body:
        raise BadRequest(f"missing field {key!r}")
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"field {key!r} must be an integer")
    if value < minimum:
        raise BadRequest(f"field {key!r} must be >= {minimum}")
    return value


def get_number(
    body: Mapping[str, Any],
    key: str,
    *,
    minimum: float | None = None,
    default: float | None = None,
    positive: bool = False,
) -> float:
    """Return body[key] as a float, or `default` when absent and a default is given."""
    if key not in body or body[key] is None:
        if default is not None:
            return default
        raise BadRequest(f"missing field {key!r}")
    value = body[key]
    if not _is_number(value):
        raise BadRequest(f"field {key!r} must be a number")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRequest(f"field {key!r} must be finite")
    if minimum is not None and value < minimum:
        raise BadRequest(f"field {key!r} must be >= {minimum}")
    if positive and value <= 0:
        raise BadRequest(f"field {key!r} must be > 0")
    return value


def get_str(body: Mapping[str, Any], key: str, *, default: str | None = None, required: bool = True) -> str | None:
    if key not in body or body[key] is None:
        if default is not None or not required:
            return default
        raise BadRequest(f"missing field {key!r}")
    value = body[key]
    if not isinstance(value, str):
        raise BadRequest(f"field {key!r} must be a string")
    return value


def require_object(body: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return body


# --- state ----------------------------------------------------------------------------------


@dataclass
class Settings:
    """Per-cluster settings handed over by `/v1/role` (DESIGN §4a.1)."""

    peer_url: str | None = None
    peer_token: str | None = None
    cluster: str | None = None  # the cluster's name, handed to the role-change hook
    interval_s: float = DEFAULT_INTERVAL_S
    lease_s: float = 2 * DEFAULT_INTERVAL_S
    max_grant_delay: float = DEFAULT_MAX_GRANT_DELAY
    max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW


@dataclass
class Candidacy:
    id: str
    deadline_s: float
    deadline_wall: float  # persisted: survives a restart (monotonic time may not, after a reboot)
    deadline_mono: float

    def public(self, mono_now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "deadline_s": self.deadline_s,
            "remaining_s": round(max(0.0, self.deadline_mono - mono_now), 3),
        }


class AgentCore:
    """Role, epoch, seq, candidacy and lease of one appliance.

    `mono` and `wall` are clock functions (wall already includes any configured offset).
    `persist(dict)` is called after every change of durable state, before the change is
    acknowledged; `serving_log(dict)` receives write-ahead serving-interval records;
    `on_role_change(role, epoch, cluster)` is told of every persisted change of role or epoch (it
    must return at once: the real agent starts its hook in the background).
    """

    def __init__(
        self,
        *,
        mono: Callable[[], float],
        wall: Callable[[], float],
        state: Mapping[str, Any] | None = None,
        persist: Callable[[dict[str, Any]], None] | None = None,
        serving_log: Callable[[dict[str, Any]], None] | None = None,
        on_role_change: Callable[[str, int, str], None] | None = None,
        name: str = "agent",
        logger: logging.Logger | None = None,
    ) -> None:
        self.mono = mono
        self.wall = wall
        self.name = name
        self.log = logger or log
        self._persist = persist
        self._serving_log = serving_log
        self._on_role_change = on_role_change
        self.started_mono = mono()
        self.role = "unconfigured"
        self.epoch = 0
        self.seq = 0
        self.candidacy: Candidacy | None = None
        self.settings = Settings()
        # Lease (memory only: a restarted agent holds no lease).
        self.lease_until = 0.0
        self.lease_epoch: int | None = None
        # Granter bookkeeping (the secondary's heartbeats to its peer).
        self.last_grant_sent: float | None = None
        self.last_answer: float | None = None
        self.peer_ok: bool | None = None  # None: not probed yet in this process
        self.granting = True  # False from the first slot without an answer until it answers
        if state:
            self._load(state)

    # -- persistence ------------------------------------------------------------------------

    def _load(self, state: Mapping[str, Any]) -> None:
        role = state.get("role", "unconfigured")
        self.role = role if role in ROLES else "unconfigured"
        self.epoch = int(state.get("epoch", 0))
        self.seq = int(state.get("seq", 0))
        s = state.get("settings") or {}
        self.settings = Settings(**{k: s[k] for k in Settings.__dataclass_fields__ if k in s})
        c = state.get("candidacy")
        if c:
            remaining = float(c["deadline_wall"]) - self.wall()
            self.candidacy = Candidacy(
                id=str(c["id"]),
                deadline_s=float(c["deadline_s"]),
                deadline_wall=float(c["deadline_wall"]),
                deadline_mono=self.mono() + remaining,
            )
        if self.role in ("secondary", "candidate"):
            # We may have sent a grant just before the restart: count it as sent now (§4a.2).
            self.last_grant_sent = self.started_mono

    def durable_state(self) -> dict[str, Any]:
        c = self.candidacy
        return {
            "role": self.role,
            "epoch": self.epoch,
            "seq": self.seq,
            "candidacy": None
            if c is None
            else {"id": c.id, "deadline_s": c.deadline_s, "deadline_wall": c.deadline_wall},
            "settings": dict(self.settings.__dict__),
        }

    def _save(self) -> None:
        if self._persist is not None:
            self._persist(self.durable_state())

    def _role_changed(self) -> None:
        """Tell the hook; the change is on disk already, so nothing here may undo or fail it."""
        if self._on_role_change is None:
            return
        try:
            self._on_role_change(self.role, self.epoch, self.settings.cluster or self.name)
        except Exception:
            self.log.exception("%s: could not start the role-change hook", self.name)

    # -- serving ----------------------------------------------------------------------------

    def holds_lease(self, mono_now: float | None = None) -> bool:
        now = self.mono() if mono_now is None else mono_now
        return self.role == "primary" and self.lease_epoch == self.epoch and now < self.lease_until

    def _drop_lease(self, why: str) -> None:
        """Stop serving now; the stop is logged before the caller acknowledges anything."""
        was_holding = self.lease_until > self.mono()
        self.lease_until = 0.0
        self.lease_epoch = None
        if was_holding:
            now = self.mono()
            if self._serving_log is not None:
                self._serving_log({"stop": now})
            self.log.info("%s: stopped serving (%s)", self.name, why)

    def _extend_lease(self, receipt: float, lease_s: float) -> None:
        new_until = receipt + lease_s
        if self.lease_epoch != self.epoch:
            self.lease_until = 0.0
        if new_until > self.lease_until:
            # Write-ahead: the interval is on record before the lease takes effect.
            if self._serving_log is not None:
                self._serving_log({"start": receipt, "end": new_until, "epoch": self.epoch})
            self.lease_until = new_until
            self.lease_epoch = self.epoch

    def check_grant(self, epoch: Any, lease_s: Any, sent_at: Any, wall_now: float) -> str | None:
        """Return why a grant is refused, or None if it is acceptable (DESIGN §4a.1)."""
        if self.role != "primary":
            return f"role is {self.role}, not primary"
        if epoch != self.epoch:
            return f"grant for epoch {epoch}, own epoch is {self.epoch}"
        if lease_s <= 0:
            return "lease_s is 0 (probe only)"
        age = wall_now - sent_at
        if age < -self.settings.max_clock_skew:
            return f"sent_at is {-age:.3f}s in the future (max_clock_skew {self.settings.max_clock_skew}s)"
        if age > self.settings.max_grant_delay:
            return f"grant is {age:.3f}s old (max_grant_delay {self.settings.max_grant_delay}s)"
        return None

    # -- candidacy --------------------------------------------------------------------------

    def expire(self, mono_now: float | None = None) -> None:
        """Revert a candidacy past its deadline to secondary (DESIGN §4a.11)."""
        now = self.mono() if mono_now is None else mono_now
        if self.role == "candidate" and self.candidacy and now >= self.candidacy.deadline_mono:
            self.log.info(
                "%s: role candidate -> secondary (candidacy %s passed its deadline)", self.name, self.candidacy.id
            )
            self.role = "secondary"
            self.candidacy = None
            self._save()
            self._role_changed()

    # -- answers ----------------------------------------------------------------------------

    def last_grant_sent_age(self, mono_now: float) -> float | None:
        return None if self.last_grant_sent is None else round(mono_now - self.last_grant_sent, 3)

    def status(self, mono_now: float | None = None) -> dict[str, Any]:
        """The fields every role answer (200 or 409) carries."""
        now = self.mono() if mono_now is None else mono_now
        return {
            "role": self.role,
            "epoch": self.epoch,
            "seq": self.seq,
            "candidacy": None if self.candidacy is None else self.candidacy.public(now),
            "last_grant_sent_age_s": self.last_grant_sent_age(now),
        }

    def lease_fields(self, mono_now: float) -> dict[str, Any]:
        held = self.lease_epoch == self.epoch and self.role == "primary"
        until = self.lease_until if held else 0.0
        return {"lease_until": round(until, 6), "lease_remaining_s": round(max(0.0, until - mono_now), 3)}

    def timing_fields(self) -> dict[str, float]:
        """The timing settings in force, so the control plane can see that a change arrived."""
        s = self.settings
        return {
            "interval_s": s.interval_s,
            "lease_s": s.lease_s,
            "max_grant_delay": s.max_grant_delay,
            "max_clock_skew": s.max_clock_skew,
        }

    def peer_fields(self, mono_now: float) -> dict[str, Any]:
        return {
            "ok": self.peer_ok,
            "last_answer_age_s": None if self.last_answer is None else round(mono_now - self.last_answer, 3),
            "last_grant_sent_age_s": self.last_grant_sent_age(mono_now),
        }

    # -- commands ---------------------------------------------------------------------------

    def check_order(self, epoch: int, seq: int, what: str) -> None:
        """Refuse (409) anything whose (epoch, seq) is not strictly newer than held (§4a.12)."""
        if (epoch, seq) <= (self.epoch, self.seq):
            raise Refused(
                f"{what} (epoch {epoch}, seq {seq}) is not newer than held (epoch {self.epoch}, seq {self.seq})",
                self.status(),
            )

    def accept_seq(self, epoch: int, seq: int, what: str) -> None:
        """Order a non-role command (inventory): same epoch, newer seq; records the seq."""
        self.expire()
        self.check_order(epoch, seq, what)
        if epoch != self.epoch:
            raise Refused(
                f"{what} names epoch {epoch} but the agent is at epoch {self.epoch}; a role command moves epochs",
                self.status(),
            )
        held_seq, self.seq = self.seq, seq
        try:
            self._save()
        except BaseException:
            self.seq = held_seq
            raise

    def apply_role(
        self, body: Any, receipt_mono: float | None = None, receipt_wall: float | None = None
    ) -> dict[str, Any]:
        """`POST /v1/role`: validate, order-check and apply a role command.

        Returns the 200 answer; raises BadRequest (400) or Refused (409).
        """
        receipt = self.mono() if receipt_mono is None else receipt_mono
        wall_now = self.wall() if receipt_wall is None else receipt_wall
        body = require_object(body)
        role = get_str(body, "role")
        if role not in COMMAND_ROLES:
            raise BadRequest(f"field 'role' must be one of {', '.join(COMMAND_ROLES)}")
        epoch = get_int(body, "epoch")
        seq = get_int(body, "seq")
        settings = self._parse_settings(body)
        candidacy = body.get("candidacy")
        if candidacy is not None:
            candidacy = require_object(candidacy, "field 'candidacy'")
            get_str(candidacy, "id")
        grant = body.get("grant")
        if grant is not None:
            grant = require_object(grant, "field 'grant'")
            get_number(grant, "lease_s", minimum=0)
            get_number(grant, "sent_at")
        if role == "candidate":
            if candidacy is None:
                raise BadRequest("role 'candidate' needs 'candidacy': {id, deadline_s}")
            get_number(candidacy, "deadline_s", positive=True)

        self.expire(receipt)
        self.check_order(epoch, seq, f"role {role}")
        old_role, old_epoch = self.role, self.epoch
        if role == "primary":
            self._check_promotion(candidacy)
        grant_result: dict[str, Any] = {}

        # Serving stops before anything else changes when this is not "stay primary here".
        if role != "primary":
            self._drop_lease(f"role {role} at epoch {epoch}")
        elif epoch != old_epoch or old_role != "primary":
            self._drop_lease(f"role primary at new epoch {epoch}")

        held = (self.role, self.epoch, self.seq, self.settings, self.candidacy, self.granting)
        self.role, self.epoch, self.seq, self.settings = role, epoch, seq, settings
        if role == "candidate":
            assert candidacy is not None
            deadline_s = float(candidacy["deadline_s"])
            self.candidacy = Candidacy(
                id=candidacy["id"],
                deadline_s=deadline_s,
                deadline_wall=wall_now + deadline_s,
                deadline_mono=receipt + deadline_s,
            )
        else:
            self.candidacy = None
        if role == "secondary" and old_role not in ("secondary", "candidate"):
            self.granting = True
        try:
            self._save()
        except BaseException:
            # Not on disk, so not accepted: keep holding the old command (the lease stays
            # dropped, which is the safe side).
            (self.role, self.epoch, self.seq, self.settings, self.candidacy, self.granting) = held
            raise
        if role == "primary" and grant is not None:
            reason = self.check_grant(epoch, float(grant["lease_s"]), float(grant["sent_at"]), wall_now)
            if reason is None:
                self._extend_lease(receipt, float(grant["lease_s"]))
            else:
                self.log.info("%s: first grant refused: %s", self.name, reason)
            grant_result = {"grant_accepted": reason is None, "grant_refused_reason": reason}
        if (old_role, old_epoch) != (role, epoch):
            self.log.info(
                "%s: role %s@%d -> %s@%d (seq %d)%s",
                self.name,
                old_role,
                old_epoch,
                role,
                epoch,
                seq,
                f" candidacy {self.candidacy.id}" if self.candidacy else "",
            )
            self._role_changed()
        return {**self.status(self.mono()), **self.lease_fields(self.mono()), **grant_result}

    def _check_promotion(self, candidacy: dict[str, Any] | None) -> None:
        """`primary` after candidacy only while still candidate for that id (§4a.10)."""
        if self.role == "candidate":
            assert self.candidacy is not None
            if candidacy is None:
                raise Refused("agent is candidate: 'primary' must name the candidacy id", self.status())
            if candidacy["id"] != self.candidacy.id:
                raise Refused(f"agent is candidate for {self.candidacy.id!r}, not {candidacy['id']!r}", self.status())
            return
        if candidacy is not None:
            # The candidacy ended (deadline, abandon, restart as secondary): the agent may have
            # granted since, so promoting it now could overlap with the old primary's lease.
            raise Refused(f"agent is not candidate for {candidacy['id']!r} (role {self.role})", self.status())

    def _parse_settings(self, body: dict[str, Any]) -> Settings:
        held = self.settings
        interval = get_number(body, "interval_s", default=held.interval_s, positive=True)
        default_lease = held.lease_s if "interval_s" not in body else 2 * interval
        return Settings(
            peer_url=get_str(body, "peer_url", required=False) or held.peer_url,
            peer_token=get_str(body, "peer_token", required=False) or held.peer_token,
            cluster=get_str(body, "cluster", required=False) or held.cluster,
            interval_s=interval,
            lease_s=get_number(body, "lease_s", default=default_lease, positive=True),
            max_grant_delay=get_number(body, "max_grant_delay", default=held.max_grant_delay, minimum=0),
            max_clock_skew=get_number(body, "max_clock_skew", default=held.max_clock_skew, minimum=0),
        )

    def heartbeat(
        self, body: Any, receipt_mono: float, receipt_wall: float, *, from_peer: bool = False
    ) -> dict[str, Any]:
        """`POST /v1/heartbeat`: accept or refuse the grant it carries.

        `receipt_mono` must be read before anything else happens to the request. A grant sent with
        the peer credential (`from_peer`) is capped at the lease the control plane last commanded
        (`settings.lease_s`): a peer can keep this agent serving, never for longer than that.
        Returns the core part of the answer (role, epoch, seq, lease, grant result).
        """
        body = require_object(body)
        epoch = get_int(body, "epoch")
        lease_s = get_number(body, "lease_s", minimum=0)
        sent_at = get_number(body, "sent_at")
        if from_peer and lease_s > self.settings.lease_s:
            self.log.info(
                "%s: peer grant of %gs capped at the commanded lease %gs", self.name, lease_s, self.settings.lease_s
            )
            lease_s = self.settings.lease_s
        self.expire(receipt_mono)
        reason = self.check_grant(epoch, lease_s, sent_at, receipt_wall)
        if reason is None:
            self._extend_lease(receipt_mono, lease_s)
        elif lease_s > 0:
            self.log.info("%s: grant refused: %s", self.name, reason)
        now = self.mono()
        return {
            "name": self.name,
            "role": self.role,
            "epoch": self.epoch,
            "seq": self.seq,
            "candidacy": None if self.candidacy is None else self.candidacy.public(now),
            "now": self.wall(),
            **self.lease_fields(now),
            "uptime_s": round(now - self.started_mono, 3),
            "settings": self.timing_fields(),
            "grant_accepted": reason is None,
            "grant_refused_reason": reason,
        }

    # -- granting (secondary → peer) --------------------------------------------------------

    def begin_grant(self) -> str | None:
        """The peer URL this slot's heartbeat goes to; None when this agent sends none.

        What the heartbeat grants is decided when it leaves (`grant_leaving`), not here.
        """
        self.expire()
        if self.role not in ("secondary", "candidate") or not self.settings.peer_url:
            return None
        return self.settings.peer_url

    def grant_leaving(self, peer_url: str) -> dict[str, Any]:
        """The heartbeat's body, decided, stamped and recorded now, as it leaves on an established
        connection (rule 2: recorded before it is sent).

        Stamping when the slot began would count the connection's set-up (a lost SYN costs 1 s)
        in the grant's age, and the primary would refuse it. Only a secondary that is still
        granting, to the peer the heartbeat was begun for, grants; otherwise (a candidate, a
        secondary whose peer missed a slot, a candidacy or promotion arrived while connecting) it is
        a probe with lease_s 0.
        """
        self.expire()
        grants = self.role == "secondary" and self.granting and self.settings.peer_url == peer_url
        sent_at = self.wall()
        if grants:
            # Read after the stamp: the record is never earlier than the grant's sent_at.
            self.last_grant_sent = self.mono()
        return {"epoch": self.epoch, "lease_s": self.settings.lease_s if grants else 0.0, "sent_at": sent_at}

    def grant_answered(self) -> None:
        self.last_answer = self.mono()
        if not self.peer_ok:
            self.log.info("%s: peer answers%s", self.name, "; granting again" if not self.granting else "")
        self.peer_ok = True
        self.granting = True

    def grant_failed(self, *, refused: bool) -> None:
        """No answer in this slot: stop granting until the peer answers again.

        Nothing to undo for a refused connection: a grant is recorded only once it leaves.
        """
        if self.peer_ok is not False or self.granting:
            self.log.info(
                "%s: no answer from peer%s; stopped granting", self.name, " (connection refused)" if refused else ""
            )
        self.peer_ok = False
        self.granting = False
