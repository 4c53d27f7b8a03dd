"""What one heartbeat slot means (DESIGN §4a rules 3–5, §5, §7), decided from plain values: the
cluster as the batch read it, both servers' answers, their counts and streaks in Redis after this
slot, the open incidents and the skewed set. Pure: no Redis, no database, no Celery; it returns
decisions (`decisions.py`) that `apply.py` carries out.

- A miss is a slot in which neither of the server's URLs answered. N consecutive misses spanning at
  least (N−1) × interval fail the server; R consecutive answers recover it.
- A primary failed by misses, by a critical service failing N checks in a row, by a skewed clock,
  by holding no lease N slots in a row, or by not holding its role at the cluster's epoch gets a
  failover request (the first cause found); a cluster that is syncing, inactive or in maintenance
  gets none.
- Component (non-critical) failures are events only; so are the heartbeat link and the control
  plane's own clock.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from alerts.choices import EventType

from .. import failover_rules as rules
from ..choices import ClusterState, Role, ServerState
from .decisions import (
    Adopt,
    ClockBack,
    CloseIncident,
    Decision,
    FailureRef,
    MarkDown,
    MarkSkewed,
    MarkUp,
    MirrorRole,
    OpenIncident,
    ReconcileSecondary,
    RequestFailover,
    SetClusterState,
)
from .probe import ServerProbe, SlotProbe
from .readings import Readings
from .state import SlotCount, incident_key
from .views import ServerView

ROLES = frozenset(Role.values)  # Role.values builds a new list at each call
SKEW_READINGS = 3  # readings in a row before skew is declared, or declared over
CONTROL_PLANE = "control-plane"  # the incident name of the control plane's own clock


@dataclass(frozen=True)
class Slot:
    """Everything one cluster's slot is judged on. `open_*`: each server's open failures (incident
    key → event id) as read with the count; `skewed`: the skewed set as the batch read it."""

    probe: SlotProbe
    primary: SlotCount
    secondary: SlotCount
    streaks: dict[str, int]
    readings: Readings
    open_primary: dict[str, str]
    open_secondary: dict[str, str]
    skewed: Set[int]


def evaluate(slot: Slot) -> list[Decision]:
    return SlotEvaluator(slot).run()


class SlotEvaluator:
    """One cluster's slot, judged in a fixed order: the primary, the secondary, the link, the
    control plane's clock, the cluster's state; then the failover request of the first cause."""

    def __init__(self, slot: Slot):
        self.slot = slot
        self.probe = slot.probe
        self.view = slot.probe.cluster
        # Server states as read with the batch, then as this slot changes them.
        self.server_states = {server.id: server.state for server in (self.view.primary, self.view.secondary)}
        self.skewed = {server_id for server_id in self.server_states if server_id in slot.skewed}
        self.decisions: list[Decision] = []
        self.causes: list[tuple[str, dict, FailureRef | None]] = []

    def run(self) -> list[Decision]:
        self._server(self.view.primary, self.probe.primary, self.slot.primary, is_primary=True)
        self._server(self.view.secondary, self.probe.secondary, self.slot.secondary, is_primary=False)
        self._link()
        self._control_plane_clock()
        self._cluster_state()
        for cause, evidence, failure in self.causes[:1]:
            self._request_failover(cause, evidence, failure)
        return self.decisions

    def _is_open(self, server: ServerView, failure: EventType, name: str = "") -> bool:
        open_set = self.slot.open_primary if server.id == self.view.primary.id else self.slot.open_secondary
        return incident_key(failure, name) in open_set

    def _holder(self, failure: EventType, name: str = "") -> ServerView | None:
        """The server whose incidents hold an open `failure` of the cluster as a whole (the link, the
        control plane's clock): opened among the primary's, it stays there when a failover makes
        that server the secondary, and must be closed where it is."""
        return next((s for s in (self.view.primary, self.view.secondary) if self._is_open(s, failure, name)), None)

    def _open(self, server: ServerView, failure: EventType, message: str, details: dict, name: str = "") -> None:
        if not self._is_open(server, failure, name):
            self.decisions.append(OpenIncident(server, failure, message, details, name))

    # -- servers ---------------------------------------------------------------------------------
    def _server(self, server: ServerView, probe: ServerProbe, count: SlotCount, *, is_primary: bool) -> None:
        view = self.view
        state = self.server_states[server.id]
        if probe.answer is not None:
            body = probe.answer.body
            if body.get("role") in ROLES and body.get("role") != server.role:
                self.decisions.append(MirrorRole(server, body["role"]))
            self._checks(server, body, is_primary)
            self._skew(server, is_primary)
            if state != ServerState.UP and rules.recovered(count.answers, view.recovery_threshold):
                message = f"Appliance {server.name} of cluster {view.name} is reachable again."
                self.decisions.append(MarkUp(server, count.answers, message))
                self.server_states[server.id] = ServerState.UP
            if is_primary:
                self._agrees(server, body)
                self._serves(server, body)
            elif self._needs_secondary_config(body):
                self.decisions.append(ReconcileSecondary())
            return
        if rules.missed_enough(count.misses, count.first_miss_at, self.probe.slot_time, view.threshold, view.interval):
            evidence = {
                "missed_slots": count.misses,
                "first_missed_slot_at": count.first_miss_at,
                "last_missed_slot_at": self.probe.slot_time,
                "interval_s": view.interval,
                "last_answer_at": None,  # read from Redis when written
                "heartbeat_error": probe.via_heartbeat.error,
                "intranet_error": probe.via_intranet.error if probe.via_intranet else "",
                "grant": self.probe.grant,
                "rule": f"{view.threshold} consecutive missed heartbeats spanning ≥ "
                f"{(view.threshold - 1) * view.interval:g} s",
            }
            if state != ServerState.DOWN:
                message = f"Appliance {server.name} of cluster {view.name} missed {count.misses} heartbeats in a row."
                self.decisions.append(MarkDown(server, evidence, message))
                self.server_states[server.id] = ServerState.DOWN
            if is_primary:
                self.causes.append(("missed_heartbeats", evidence, FailureRef(server, EventType.SERVER_FAILED)))

    def _agrees(self, server: ServerView, body: dict) -> None:
        """The database's primary must hold the primary role at the cluster's epoch. When its agent
        says otherwise (it was demoted by an interrupted switchover, its state was wiped, the
        database was restored), the database adopts any newer epoch and seq it holds, and the
        cluster fails over to the secondary: nobody would serve otherwise."""
        why = rules.disagreement(body, self.view.epoch)
        if not why or self.view.state == ClusterState.FAILING_OVER or self.view.has_request:
            return
        self.decisions.append(Adopt(body.get("epoch"), body.get("seq")))
        self.causes.append(("agents_disagree", {"reason": why, "agent": server.name}, None))

    def _serves(self, server: ServerView, body: dict) -> None:
        """A primary that answers, holds its role, and yet holds no lease for N slots in a row is
        dark while the cluster is called up: a cause to act like any other (a failover onto the
        secondary, damped like the other causes)."""
        dark = bool(self.slot.readings.dark)
        streak = self.slot.streaks["dark"]
        if rules.not_serving(dark, streak, self.view.threshold, bool(rules.failing_critical_services(body))):
            evidence = {"slots_without_lease": streak, "grant": self.probe.grant, "agent": server.name}
            self.causes.append(("not_serving", evidence, None))

    def _needs_secondary_config(self, body: dict) -> bool:
        """A returning old primary, or a wiped appliance: not secondary at the cluster's epoch."""
        if self.view.state == ClusterState.FAILING_OVER or self.view.has_request:
            return False
        return body.get("role") not in (Role.SECONDARY, Role.CANDIDATE) or body.get("epoch") != self.view.epoch

    def _checks(self, server: ServerView, body: dict, is_primary: bool) -> None:
        threshold = self.view.threshold
        for service in body.get("services") or []:
            name = str(service.get("name", "?"))
            if not service.get("critical", True):
                continue
            failures = int(service.get("consecutive_failures") or 0)
            if not service.get("ok") and failures >= threshold:
                evidence = {"service": name, "consecutive_failures": failures, "rule": f"{threshold} failed checks"}
                message = f"Critical service {name} failed on {server.name} ({failures} checks in a row)."
                self._open(server, EventType.CRITICAL_SERVICE_FAILED, message, evidence, name)
                if is_primary:
                    failure = FailureRef(server, EventType.CRITICAL_SERVICE_FAILED, name)
                    self.causes.append(("critical_service", evidence, failure))
            elif service.get("ok") and self._is_open(server, EventType.CRITICAL_SERVICE_FAILED, name):
                message = f"Critical service {name} on {server.name} passes again."
                close = CloseIncident(server, EventType.CRITICAL_SERVICE_FAILED, message, {"service": name}, name)
                self.decisions.append(close)
        for component in body.get("components") or []:
            name = str(component.get("name", "?"))
            details = {"component": name}
            if not component.get("ok"):
                message = f"Component {name} failed on {server.name}; no failover for a component."
                self._open(server, EventType.COMPONENT_FAILED, message, details, name)
            elif self._is_open(server, EventType.COMPONENT_FAILED, name):
                message = f"Component {name} on {server.name} works again."
                self.decisions.append(CloseIncident(server, EventType.COMPONENT_FAILED, message, details, name))

    def _skew(self, server: ServerView, is_primary: bool) -> None:
        reading = self.slot.readings.skews.get(server.id)
        if reading is None:
            return
        if server.id not in self.skewed and self._is_open(server, EventType.CLOCK_SKEW_DETECTED):
            # A Redis restart loses the set but not the incident (rebuilt from the events): the
            # server stays skewed, with no grants, until its clock is seen back.
            self.decisions.append(MarkSkewed(server, restored=True))
            self.skewed.add(server.id)
        bad = reading.blamed
        streak = self.slot.streaks["primary_skew" if is_primary else "secondary_skew"]
        evidence = {
            "offset_s": round(reading.offset, 4),
            "uncertainty_s": round(reading.uncertainty, 4),
            "limit_s": reading.limit,
        }
        if bad and streak >= SKEW_READINGS:
            self.decisions.append(MarkSkewed(server))
            message = f"The clock of {server.name} is {reading.offset:+.3f} s off; grants to it stopped."
            self._open(server, EventType.CLOCK_SKEW_DETECTED, message, {**evidence, "readings": streak})
            if is_primary:
                self.causes.append(("clock_skew", evidence, FailureRef(server, EventType.CLOCK_SKEW_DETECTED)))
        elif not bad and streak >= SKEW_READINGS and server.id in self.skewed:
            message = f"The clock of {server.name} is back within {reading.limit:g} s."
            self.decisions.append(ClockBack(CloseIncident(server, EventType.CLOCK_SKEW_DETECTED, message, evidence)))

    # -- the heartbeat link and the cluster -------------------------------------------------------
    def _link(self) -> None:
        """A link that one side alone cannot cross: heartbeat_link_down, never a failover (§4.4)."""
        reading = self.slot.readings.link
        if reading is None:
            return  # a down primary is not a link fault
        streak = self.slot.streaks["link"]
        holder = self._holder(EventType.HEARTBEAT_LINK_DOWN)
        server = holder or self.view.primary
        evidence = {
            "control_plane_heartbeat_url": "failed" if reading.cut_by_control_plane else "answered",
            "secondary_sees_primary": reading.peer.get("ok"),
            "secondary_last_answer_age_s": reading.peer.get("last_answer_age_s"),
            "readings": streak,
        }
        name = self.view.name
        if reading.bad and streak >= self.view.threshold and holder is None:
            message = (
                f"The heartbeat link of cluster {name} is down on one side; the primary still answers: no failover."
            )
            self._open(server, EventType.HEARTBEAT_LINK_DOWN, message, evidence)
        elif not reading.bad and streak >= self.view.recovery_threshold and holder is not None:
            message = f"The heartbeat link of cluster {name} works again."
            self.decisions.append(CloseIncident(server, EventType.HEARTBEAT_LINK_DOWN, message, evidence))

    def _control_plane_clock(self) -> None:
        """Both appliances agree with each other and disagree with the control plane: its own clock
        is off. An event (kept among the primary's incidents, named "control-plane"), never a
        failover and no grants stopped: the agents judge the grants by their own clocks."""
        reading = self.slot.readings.control_plane
        if reading is None:
            return
        streak = self.slot.streaks["control_plane_skew"]
        holder = self._holder(EventType.CLOCK_SKEW_DETECTED, CONTROL_PLANE)
        server = holder or self.view.primary
        evidence = {
            "blamed": "control plane",
            "primary_offset_s": round(reading.primary_offset, 4),
            "secondary_offset_s": round(reading.secondary_offset, 4),
            "limit_s": reading.limit,
            "readings": streak,
        }
        if reading.blamed and streak >= SKEW_READINGS and holder is None:
            message = (
                f"The control plane's clock is {-reading.primary_offset:+.3f} s off from both appliances of cluster "
                f"{self.view.name}, which agree with each other: no failover; check NTP on the control-plane hosts."
            )
            self._open(server, EventType.CLOCK_SKEW_DETECTED, message, evidence, CONTROL_PLANE)
        elif not reading.blamed and streak >= SKEW_READINGS and holder is not None:
            message = f"The control plane's clock agrees with the appliances of cluster {self.view.name} again."
            close = CloseIncident(server, EventType.CLOCK_SKEW_DETECTED, message, evidence, CONTROL_PLANE)
            self.decisions.append(close)

    def _cluster_state(self) -> None:
        view = self.view
        if view.state not in (ClusterState.HEALTHY, ClusterState.DEGRADED):
            return
        both_up = all(state == ServerState.UP for state in self.server_states.values())
        link_open = self._is_open(view.primary, EventType.HEARTBEAT_LINK_DOWN)
        healthy = both_up and not link_open and view.replication_current
        wanted = ClusterState.HEALTHY if healthy else ClusterState.DEGRADED
        if wanted != view.state:
            self.decisions.append(SetClusterState(wanted, healthy))

    def _request_failover(self, cause: str, evidence: dict, failure: FailureRef | None) -> None:
        """Only for the primary seen at the epoch seen (the request says which); re-requested on
        every later slot with a cause while it stands (§4a rule 5)."""
        view = self.view
        if not rules.may_request(view.maintenance, view.active, view.state == ClusterState.SYNCING):
            return
        window = rules.damping_window_s(cause, view.interval)  # rules.damped, as a condition on the row
        self.decisions.append(RequestFailover(cause, evidence, failure, window))
