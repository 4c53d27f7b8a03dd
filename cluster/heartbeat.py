"""What one heartbeat slot means (DESIGN §4a rules 3–5, §5, §7): counters in Redis, and on a
transition a database write with its event in one transaction.

- A miss is a slot in which neither of the server's URLs answered. N consecutive misses spanning at
  least (N−1) × interval fail the server; R consecutive answers recover it.
- A primary failed by misses, by a critical service failing N checks in a row, or by a skewed clock
  gets a failover request (write-ahead, on the cluster row) and the failover task is queued.
- Component (non-critical) failures are events only; so is everything in a cluster in maintenance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.choices import EventType

from . import failover_rules as rules
from .choices import ClusterState, IncidentOutcome, Role, ServerState, StepKind
from .failover_rules import disagreement, failing_critical_services, holds_no_lease, skew_blame
from .heartbeat_state import PREFIX, SKEWED_SET, HeartbeatState, SlotEntry, SlotState, link_key, server_key
from .incident_log import actor, new_incident_id, record_step
from .incidents import Incidents
from .models import Cluster, Server
from .probe import ClusterView, ServerProbe, ServerView, SlotProbe
from .role_commands import adopt

ROLES = frozenset(Role.values)  # Role.values builds a new list at each call
WORKER = "heartbeat worker"  # who decides, in an incident's story
SKEW_READINGS = 3  # readings in a row before skew is declared, or declared over
CONTROL_PLANE = "control-plane"  # the incident name of the control plane's own clock


def skew_reading(view, answer) -> tuple[bool, float, float, float] | None:
    """(off from the control plane's clock, offset, uncertainty, limit) of one answer's clock, or
    None without a clock in it."""
    return rules.skew_reading(
        answer.body.get("now"), answer.sent_wall, answer.received_wall, answer.rtt, view.max_clock_skew
    )


def link_reading(probe: SlotProbe) -> tuple[bool, bool, dict] | None:
    """(bad, cut_by_control_plane, secondary's peer fields), or None when the primary is down."""
    primary, secondary = probe.primary, probe.secondary
    if not primary.answered:
        return None
    peer = (secondary.answer.body.get("peer") or {}) if secondary.answered else {}
    cut_by_control_plane = primary.heartbeat_link_failed
    cut_for_secondary = secondary.answered and peer.get("ok") is False
    return cut_by_control_plane or cut_for_secondary, cut_by_control_plane, peer


def _streak(bad: bool) -> tuple[str, str]:
    return ("bad", "good") if bad else ("good", "bad")


@dataclass
class CountedSlots:
    """Probes of a batch with their Redis entries, the readings the evaluation needs (clocks by
    server, the link) and what `HeartbeatState.aevaluate_slots` read and wrote for them."""

    probes: list[SlotProbe]
    entries: list[SlotEntry]
    readings: list[tuple[dict, tuple | None, tuple | None]]
    slot_states: list[SlotState]


def slot_entries(probes: list[SlotProbe]) -> tuple[list[SlotEntry], list[tuple[dict, tuple | None, tuple | None]]]:
    """What each probe's answers count in Redis, and the readings made of them, once per slot:
    clocks by server (blamed or not), the link, and the control plane's own clock."""
    entries, readings = [], []
    for probe in probes:
        bumps, skews = [], {}
        pairs = ((probe.cluster.primary, probe.primary), (probe.cluster.secondary, probe.secondary))
        raw = [skew_reading(probe.cluster, p.answer) if p.answered else None for _, p in pairs]
        blamed = skew_blame(*raw)
        for (server, _), reading, blame in zip(pairs, raw, blamed, strict=False):
            if reading is not None:
                skews[server.id] = (blame, *reading[1:])
                bumps.append((server_key(server.id), *(f"skew_{field}" for field in _streak(blame))))
        control_plane = None
        if raw[0] is not None and raw[1] is not None:
            control_plane = (blamed[2], raw[0][1], raw[1][1], raw[0][3])
            bumps.append((link_key(probe.cluster.id), *(f"cpskew_{field}" for field in _streak(blamed[2]))))
        link = link_reading(probe)
        if link is not None:
            bumps.append((link_key(probe.cluster.id), *_streak(link[0])))
        if probe.primary.answered:
            dark = holds_no_lease(probe.primary.answer.body, probe.cluster.epoch)
            bumps.append((server_key(probe.cluster.primary.id), *(f"dark_{field}" for field in _streak(dark))))
        readings.append((skews, link, control_plane))
        entries.append(
            SlotEntry(
                probe.cluster.primary.id, probe.primary.answered, probe.cluster.secondary.id,
                probe.secondary.answered, probe.slot, probe.slot_time, bumps,
            )
        )  # fmt: skip
    return entries, readings


def evaluate_counted(state: HeartbeatState, counted: CountedSlots, on_error, skewed: set[int]) -> None:
    """Every counted probe evaluated: the steady state is done with the counts already read; a
    transition reads and writes Redis and the database on its own."""
    rows = zip(counted.probes, counted.entries, counted.readings, counted.slot_states, strict=True)
    for probe, entry, (skews, link, control_plane), slot_state in rows:
        if not slot_state.primary.counted:
            continue  # a stale probe: this slot, or a later one, was counted already
        try:
            SlotEvaluator(
                state, probe, entry, slot_state, skews, link, skewed=skewed, control_plane=control_plane
            ).run()
        except Exception:
            on_error(probe)


class SlotEvaluator:
    """One cluster's slot, with what `slot_entries` read of its answers (clock readings by server,
    the link reading) and read and wrote for it in Redis.

    It decides on the rows as the batch read them (`probe.cluster`); a transition writes them by id,
    guarded by the state it saw, and loads the model instances its events name."""

    def __init__(
        self, state: HeartbeatState, probe: SlotProbe, entry: SlotEntry, slot_state: SlotState,
        skews: dict[int, tuple], link: tuple | None, skewed: set[int], control_plane: tuple | None = None,
    ):  # fmt: skip
        self.state = state
        self.probe = probe
        self.view = probe.cluster
        # Server states as read with the batch, then as this slot changes them.
        self.server_states = {server.id: server.state for server in (self.view.primary, self.view.secondary)}
        self.failover_causes: list[tuple[str, dict]] = []
        bumped = zip(entry.bumps, slot_state.streaks, strict=True)
        self.streaks = {(key, field): value for (key, field, _), value in bumped}
        self.slot_state = slot_state
        self.skews = skews
        self.link = link
        self.control_plane = control_plane  # (blamed, primary's offset, secondary's offset, limit)
        self.skewed = skewed  # the skewed set read with the batch: SREM only for its members
        self._cluster: Cluster | None = None

    def _bump(self, key: str, field: str) -> int:
        return self.streaks[(key, field)]

    def _incidents(self, server_id: int) -> Incidents:
        snapshot = self.slot_state.open_primary if server_id == self.view.primary.id else self.slot_state.open_secondary
        return Incidents(self.state, server_id, snapshot)

    def _rows(self, server_id: int) -> tuple[Cluster, Server]:
        """The cluster and the server an event names (a transition: rare)."""
        if self._cluster is None:
            self._cluster = Cluster.objects.select_related("primary", "secondary").get(pk=self.view.id)
        servers = (self._cluster.primary, self._cluster.secondary)
        server = next((s for s in servers if s.pk == server_id), None) or Server.objects.get(pk=server_id)
        return self._cluster, server

    def run(self) -> None:
        self._server(self.view.primary, self.probe.primary, self.slot_state.primary, is_primary=True)
        self._server(self.view.secondary, self.probe.secondary, self.slot_state.secondary, is_primary=False)
        self._link()
        self._control_plane_clock()
        self._cluster_state()
        for cause, evidence in self.failover_causes[:1]:
            request_failover(self.view, cause, evidence)

    # -- servers ---------------------------------------------------------------------------------
    def _server(self, server: ServerView, probe: ServerProbe, count, *, is_primary: bool) -> None:
        incidents = self._incidents(server.id)
        view = self.view
        state = self.server_states[server.id]
        if probe.answered:
            body = probe.answer.body
            self._mirror_role(server, body)
            self._checks(server, body, incidents, is_primary)
            self._skew(server, incidents, is_primary)
            if state != ServerState.UP and rules.recovered(count.answers, view.recovery_threshold):
                self._mark_up(server, incidents, count.answers)
            if is_primary:
                self._agrees(server, body)
                self._serves(server, body)
            if not is_primary and self._needs_secondary_config(body):
                from .tasks import reconcile_secondary

                if self.state.redis.set(f"{PREFIX}reconcile:{view.id}", 1, nx=True, ex=5):
                    reconcile_secondary.delay(view.id)
            return
        if rules.missed_enough(count.misses, count.first_miss_at, self.probe.slot_time, view.threshold, view.interval):
            evidence = {
                "missed_slots": count.misses,
                "first_missed_slot_at": count.first_miss_at,
                "last_missed_slot_at": self.probe.slot_time,
                "interval_s": view.interval,
                "last_answer_at": self.state.last_answers([server.id]).get(server.id),
                "heartbeat_error": probe.via_heartbeat.error,
                "intranet_error": probe.via_intranet.error if probe.via_intranet else "",
                "grant": self.probe.grant,
                "rule": f"{view.threshold} consecutive missed heartbeats spanning ≥ "
                f"{(view.threshold - 1) * view.interval:g} s",
            }
            opened = self._mark_down(server, incidents, evidence) if state != ServerState.DOWN else None
            if is_primary:
                failure = opened.pk if opened else incidents.open_event_id(EventType.SERVER_FAILED)
                self.failover_causes.append(("missed_heartbeats", {**evidence, "failure_event": failure}))

    def _agrees(self, server: ServerView, body: dict) -> None:
        """The database's primary must hold the primary role at the cluster's epoch. When its agent
        says otherwise (it was demoted by an interrupted switchover, its state was wiped, the
        database was restored), the database adopts any newer epoch and seq it holds, and the
        cluster fails over to the secondary: nobody would serve otherwise."""
        view = self.view
        why = disagreement(body, view.epoch)
        if not why or view.state == ClusterState.FAILING_OVER or view.has_request:
            return
        adopt(view.id, body.get("epoch"), body.get("seq"))
        self.failover_causes.append(("agents_disagree", {"reason": why, "agent": server.name}))

    def _serves(self, server: ServerView, body: dict) -> None:
        """A primary that answers, holds its role, and yet holds no lease for N slots in a row is
        dark while the cluster is called up: a cause to act like any other (a failover onto the
        secondary, damped like the other causes)."""
        dark = holds_no_lease(body, self.view.epoch)
        streak = self._bump(server_key(server.id), "dark_bad" if dark else "dark_good")
        if rules.not_serving(dark, streak, self.view.threshold, bool(failing_critical_services(body))):
            evidence = {"slots_without_lease": streak, "grant": self.probe.grant, "agent": server.name}
            self.failover_causes.append(("not_serving", evidence))

    def _mark_up(self, server: ServerView, incidents: Incidents, answers: int) -> None:
        recovery = None
        with transaction.atomic():
            changed = (
                Server.objects.filter(pk=server.id)
                .exclude(state=ServerState.UP)
                .update(state=ServerState.UP, last_heartbeat_at=timezone.now())
            )
            if changed:
                recovery = self._close(
                    incidents,
                    EventType.SERVER_FAILED,
                    f"Appliance {server.name} of cluster {self.view.name} is reachable again.",
                    server,
                    {"consecutive_answers": answers},
                )
        self.server_states[server.id] = ServerState.UP
        if changed:
            record_step(
                self.view.id, StepKind.RECOVERED, worker=WORKER, event=recovery, server=server.name, answers=answers
            )

    def _mark_down(self, server: ServerView, incidents: Incidents, evidence: dict):
        """Down, with its `server_failed` event (returned; None when it was down already)."""
        opened = None
        with transaction.atomic():
            changed = Server.objects.filter(pk=server.id).exclude(state=ServerState.DOWN).update(state=ServerState.DOWN)
            if changed:
                opened = self._open(
                    incidents,
                    EventType.SERVER_FAILED,
                    f"Appliance {server.name} of cluster {self.view.name} missed "
                    f"{evidence['missed_slots']} heartbeats in a row.",
                    server,
                    evidence,
                )
        self.server_states[server.id] = ServerState.DOWN
        return opened

    def _mirror_role(self, server: ServerView, body: dict) -> None:
        role = body.get("role")
        if role in ROLES and role != server.role:
            Server.objects.filter(pk=server.id).update(role=role)

    def _needs_secondary_config(self, body: dict) -> bool:
        """A returning old primary, or a wiped appliance: not secondary at the cluster's epoch."""
        if self.view.state == ClusterState.FAILING_OVER or self.view.has_request:
            return False
        return body.get("role") not in (Role.SECONDARY, Role.CANDIDATE) or body.get("epoch") != self.view.epoch

    def _open(self, incidents: Incidents, failure: EventType, message: str, server: ServerView, details, name=""):
        if incidents.is_open(failure, name):
            return None
        cluster, row = self._rows(server.id)
        return incidents.open(failure, message, cluster=cluster, server=row, details=details, name=name)

    def _close(self, incidents: Incidents, failure: EventType, message: str, server: ServerView, details, name=""):
        cluster, row = self._rows(server.id)
        return incidents.close(failure, message, cluster=cluster, server=row, details=details, name=name)

    def _checks(self, server: ServerView, body: dict, incidents: Incidents, is_primary: bool) -> None:
        threshold = self.view.threshold
        for service in body.get("services") or []:
            name = str(service.get("name", "?"))
            if not service.get("critical", True):
                continue
            failures = int(service.get("consecutive_failures") or 0)
            if not service.get("ok") and failures >= threshold:
                evidence = {"service": name, "consecutive_failures": failures, "rule": f"{threshold} failed checks"}
                message = f"Critical service {name} failed on {server.name} ({failures} checks in a row)."
                opened = self._open(incidents, EventType.CRITICAL_SERVICE_FAILED, message, server, evidence, name)
                if is_primary:
                    failure = opened.pk if opened else incidents.open_event_id(EventType.CRITICAL_SERVICE_FAILED, name)
                    self.failover_causes.append(("critical_service", {**evidence, "failure_event": failure}))
            elif service.get("ok") and incidents.is_open(EventType.CRITICAL_SERVICE_FAILED, name):
                message = f"Critical service {name} on {server.name} passes again."
                self._close(incidents, EventType.CRITICAL_SERVICE_FAILED, message, server, {"service": name}, name)
        for component in body.get("components") or []:
            name = str(component.get("name", "?"))
            details = {"component": name}
            if not component.get("ok"):
                message = f"Component {name} failed on {server.name}; no failover for a component."
                self._open(incidents, EventType.COMPONENT_FAILED, message, server, details, name)
            elif incidents.is_open(EventType.COMPONENT_FAILED, name):
                message = f"Component {name} on {server.name} works again."
                self._close(incidents, EventType.COMPONENT_FAILED, message, server, details, name)

    def _skew(self, server: ServerView, incidents: Incidents, is_primary: bool) -> None:
        reading = self.skews.get(server.id)
        if reading is None:
            return
        bad, offset, uncertainty, limit = reading
        if server.id not in self.skewed and incidents.is_open(EventType.CLOCK_SKEW_DETECTED):
            # A Redis restart loses the set but not the incident (rebuilt from the events): the
            # server stays skewed, with no grants, until its clock is seen back.
            self.state.redis.sadd(SKEWED_SET, server.id)
            self.skewed.add(server.id)
        streak = self._bump(server_key(server.id), "skew_bad" if bad else "skew_good")
        evidence = {"offset_s": round(offset, 4), "uncertainty_s": round(uncertainty, 4), "limit_s": limit}
        if bad and streak >= SKEW_READINGS:
            self.state.redis.sadd(SKEWED_SET, server.id)
            message = f"The clock of {server.name} is {offset:+.3f} s off; grants to it stopped."
            opened = self._open(
                incidents, EventType.CLOCK_SKEW_DETECTED, message, server, {**evidence, "readings": streak}
            )
            if is_primary:
                failure = opened.pk if opened else incidents.open_event_id(EventType.CLOCK_SKEW_DETECTED)
                self.failover_causes.append(("clock_skew", {**evidence, "failure_event": failure}))
        elif (
            not bad
            and streak >= SKEW_READINGS
            and server.id in self.skewed
            and self.state.redis.srem(SKEWED_SET, server.id)
        ):
            message = f"The clock of {server.name} is back within {limit:g} s."
            self._close(incidents, EventType.CLOCK_SKEW_DETECTED, message, server, evidence)

    # -- the heartbeat link and the cluster -------------------------------------------------------
    def _link(self) -> None:
        """A link that one side alone cannot cross: heartbeat_link_down, never a failover (§4.4)."""
        reading = self.link
        if reading is None:
            return  # a down primary is not a link fault
        bad, cut_by_control_plane, peer = reading
        streak = self._bump(link_key(self.view.id), _streak(bad)[0])
        server = self.view.primary
        incidents = self._incidents(server.id)
        evidence = {
            "control_plane_heartbeat_url": "failed" if cut_by_control_plane else "answered",
            "secondary_sees_primary": peer.get("ok"),
            "secondary_last_answer_age_s": peer.get("last_answer_age_s"),
            "readings": streak,
        }
        name = self.view.name
        if bad and streak >= self.view.threshold:
            message = (
                f"The heartbeat link of cluster {name} is down on one side; the primary still answers: no failover."
            )
            self._open(incidents, EventType.HEARTBEAT_LINK_DOWN, message, server, evidence)
        elif not bad and streak >= self.view.recovery_threshold and incidents.is_open(EventType.HEARTBEAT_LINK_DOWN):
            message = f"The heartbeat link of cluster {name} works again."
            self._close(incidents, EventType.HEARTBEAT_LINK_DOWN, message, server, evidence)

    def _control_plane_clock(self) -> None:
        """Both appliances agree with each other and disagree with the control plane: its own clock
        is off. An event (kept among the primary's incidents, named "control-plane"), never a
        failover and no grants stopped: the agents judge the grants by their own clocks."""
        if self.control_plane is None:
            return
        blamed, primary_offset, secondary_offset, limit = self.control_plane
        streak = self._bump(link_key(self.view.id), "cpskew_bad" if blamed else "cpskew_good")
        # Opened among the primary's incidents; a failover since may have made that the secondary.
        holder = next(
            (s for s in (self.view.primary, self.view.secondary)
             if self._incidents(s.id).is_open(EventType.CLOCK_SKEW_DETECTED, CONTROL_PLANE)),
            None,
        )  # fmt: skip
        server = holder or self.view.primary
        incidents = self._incidents(server.id)
        evidence = {
            "blamed": "control plane",
            "primary_offset_s": round(primary_offset, 4),
            "secondary_offset_s": round(secondary_offset, 4),
            "limit_s": limit,
            "readings": streak,
        }
        if blamed and streak >= SKEW_READINGS and holder is None:
            message = (
                f"The control plane's clock is {-primary_offset:+.3f} s off from both appliances of cluster "
                f"{self.view.name}, which agree with each other: no failover; check NTP on the control-plane hosts."
            )
            self._open(incidents, EventType.CLOCK_SKEW_DETECTED, message, server, evidence, CONTROL_PLANE)
        elif not blamed and streak >= SKEW_READINGS and holder is not None:
            message = f"The control plane's clock agrees with the appliances of cluster {self.view.name} again."
            self._close(incidents, EventType.CLOCK_SKEW_DETECTED, message, server, evidence, CONTROL_PLANE)

    def _cluster_state(self) -> None:
        view = self.view
        if view.state not in (ClusterState.HEALTHY, ClusterState.DEGRADED):
            return
        both_up = all(state == ServerState.UP for state in self.server_states.values())
        link_open = self._incidents(view.primary.id).is_open(EventType.HEARTBEAT_LINK_DOWN)
        healthy = both_up and not link_open and view.replication_current
        wanted = ClusterState.HEALTHY if healthy else ClusterState.DEGRADED
        if wanted != view.state:
            changed = Cluster.objects.filter(
                pk=view.id, state__in=[ClusterState.HEALTHY, ClusterState.DEGRADED]
            ).update(state=wanted)
            if changed and healthy:
                record_step(view.id, StepKind.HEALTHY, worker=WORKER, close=IncidentOutcome.HEALTHY)


def request_failover(view: ClusterView, cause: str, evidence: dict) -> bool:
    """Write the failover request on the cluster row and queue the failover task (§4a rule 5).

    Only for the primary seen at the epoch seen; re-queued on every later miss while it stands.
    A cluster that is syncing, inactive or in maintenance never fails over automatically.
    """
    from .tasks import run_failover

    if not rules.may_request(view.maintenance, view.active, view.state == ClusterState.SYNCING):
        return False
    request = {
        "cause": cause,
        "server_id": view.primary.id,
        "seen_epoch": view.epoch,
        "requested_at": time.time(),
        "evidence": evidence,
        "detected_by": actor(WORKER),
        "incident": new_incident_id(),  # the incident this request opens (cluster/incident_log.py)
    }
    undamped = Q()
    window = rules.damping_window_s(cause, view.interval)  # rules.damped, as a condition on the row
    if window:
        since = timezone.now() - timedelta(seconds=window)
        undamped = Q(last_failover_at__isnull=True) | Q(last_failover_at__lt=since)
    written = Cluster.objects.filter(
        undamped,
        Q(failover_request__isnull=True),
        pk=view.id,
        epoch=view.epoch,
        primary_id=view.primary.id,
        maintenance=False,
    ).update(failover_request=request)
    if written or view.has_request:
        run_failover.apply_async((view.id,), expires=30)
        return True
    return False
