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

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.choices import EventType

from .choices import ClusterState, Role, ServerState
from .heartbeat_state import PREFIX, HeartbeatState, SlotEntry, SlotState, link_key, server_key
from .incidents import Incidents
from .models import Cluster, Server
from .probe import ServerProbe, SlotProbe

ROLES = frozenset(Role.values)  # Role.values builds a new list at each call
SKEW_READINGS = 3  # readings in a row before skew is declared, or declared over
SKEWED_SET = f"{PREFIX}skewed"


def skewed_servers(state: HeartbeatState) -> set[int]:
    return {int(member) for member in state.redis.smembers(SKEWED_SET)}


def skew_reading(view, answer) -> tuple[bool, float, float, float] | None:
    """(bad, offset, uncertainty, limit) of one answer's clock, or None without a clock in it."""
    agent_now = answer.body.get("now")
    if not isinstance(agent_now, (int, float)):
        return None
    offset = agent_now - (answer.sent_wall + answer.received_wall) / 2
    uncertainty = answer.rtt / 2
    limit = view.max_clock_skew / 2
    return abs(offset) - uncertainty > limit, offset, uncertainty, limit


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


def evaluate_batch(state: HeartbeatState, clusters: dict, probes: list[SlotProbe], on_error, skewed: set[int]) -> None:
    """Every probe of a batch evaluated, its steady-state Redis reads and writes in one round trip
    for the whole batch (HeartbeatState.evaluate_slots); transitions still read and write Redis and
    the database one by one."""
    entries, readings = [], []
    for probe in probes:
        bumps, skews = [], {}
        pairs = ((probe.cluster.primary, probe.primary), (probe.cluster.secondary, probe.secondary))
        for server, server_probe in pairs:
            reading = skew_reading(probe.cluster, server_probe.answer) if server_probe.answered else None
            if reading is not None:
                skews[server.id] = reading
                bumps.append((server_key(server.id), *(f"skew_{field}" for field in _streak(reading[0]))))
        link = link_reading(probe)
        if link is not None:
            bumps.append((link_key(probe.cluster.id), *_streak(link[0])))
        readings.append((skews, link))
        entries.append(
            SlotEntry(
                probe.cluster.primary.id, probe.primary.answered, probe.cluster.secondary.id,
                probe.secondary.answered, probe.slot, probe.slot_time, bumps,
            )
        )  # fmt: skip
    slot_states = state.evaluate_slots(entries)
    for probe, entry, (skews, link), slot_state in zip(probes, entries, readings, slot_states, strict=True):
        if not slot_state.primary.counted:
            continue  # a stale probe: this slot, or a later one, was counted already
        cluster = clusters[probe.cluster.id]
        try:
            SlotEvaluator(state, cluster, probe, entry, slot_state, skews, link, skewed=skewed).run()
        except Exception:
            on_error(probe)


class SlotEvaluator:
    """One cluster's slot, with what `evaluate_batch` read of its answers (clock readings by server,
    the link reading) and read and wrote for it in Redis."""

    def __init__(
        self, state: HeartbeatState, cluster: Cluster, probe: SlotProbe, entry: SlotEntry, slot_state: SlotState,
        skews: dict[int, tuple], link: tuple | None, skewed: set[int],
    ):  # fmt: skip
        self.state = state
        self.cluster = cluster
        self.probe = probe
        self.view = probe.cluster
        self.failover_causes: list[tuple[str, dict]] = []
        bumped = zip(entry.bumps, slot_state.streaks, strict=True)
        self.streaks = {(key, field): value for (key, field, _), value in bumped}
        self.slot_state = slot_state
        self.skews = skews
        self.link = link
        self.skewed = skewed  # the skewed set read with the batch: SREM only for its members

    def _bump(self, key: str, field: str) -> int:
        return self.streaks[(key, field)]

    def _incidents(self, server_id: int) -> Incidents:
        snapshot = self.slot_state.open_primary if server_id == self.view.primary.id else self.slot_state.open_secondary
        return Incidents(self.state, server_id, snapshot)

    def run(self) -> None:
        self._server(self.cluster.primary, self.probe.primary, self.slot_state.primary, is_primary=True)
        self._server(self.cluster.secondary, self.probe.secondary, self.slot_state.secondary, is_primary=False)
        self._link()
        self._cluster_state()
        for cause, evidence in self.failover_causes[:1]:
            request_failover(self.cluster, cause, self.cluster.primary, evidence)

    # -- servers ---------------------------------------------------------------------------------
    def _server(self, server: Server, probe: ServerProbe, count, *, is_primary: bool) -> None:
        incidents = self._incidents(server.pk)
        view = self.view
        if probe.answered:
            body = probe.answer.body
            self._mirror_role(server, body)
            self._checks(server, body, incidents, is_primary)
            self._skew(server, incidents, is_primary)
            if server.state != ServerState.UP and count.answers >= view.recovery_threshold:
                self._mark_up(server, incidents, count.answers)
            if not is_primary and self._needs_secondary_config(body):
                from .tasks import reconcile_secondary

                if self.state.redis.set(f"{PREFIX}reconcile:{self.cluster.pk}", 1, nx=True, ex=5):
                    reconcile_secondary.delay(self.cluster.pk)
            return
        span = self.probe.slot_time - (count.first_miss_at or self.probe.slot_time)
        if count.misses >= view.threshold and span >= (view.threshold - 1) * view.interval - 1e-6:
            evidence = {
                "missed_slots": count.misses,
                "first_missed_slot_at": count.first_miss_at,
                "last_answer_at": self.state.last_answers([server.pk]).get(server.pk),
                "heartbeat_error": probe.via_heartbeat.error,
                "intranet_error": probe.via_intranet.error if probe.via_intranet else "",
                "grant": self.probe.grant,
                "rule": f"{view.threshold} consecutive missed heartbeats spanning ≥ "
                f"{(view.threshold - 1) * view.interval:g} s",
            }
            if server.state != ServerState.DOWN:
                self._mark_down(server, incidents, evidence)
            if is_primary:
                self.failover_causes.append(("missed_heartbeats", evidence))

    def _mark_up(self, server: Server, incidents: Incidents, answers: int) -> None:
        with transaction.atomic():
            changed = (
                Server.objects.filter(pk=server.pk)
                .exclude(state=ServerState.UP)
                .update(state=ServerState.UP, last_heartbeat_at=timezone.now())
            )
            if changed:
                incidents.close(
                    EventType.SERVER_FAILED,
                    f"Appliance {server.name} of cluster {self.cluster.name} is reachable again.",
                    cluster=self.cluster,
                    server=server,
                    details={"consecutive_answers": answers},
                )
        server.state = ServerState.UP

    def _mark_down(self, server: Server, incidents: Incidents, evidence: dict) -> None:
        with transaction.atomic():
            changed = Server.objects.filter(pk=server.pk).exclude(state=ServerState.DOWN).update(state=ServerState.DOWN)
            if changed:
                incidents.open(
                    EventType.SERVER_FAILED,
                    f"Appliance {server.name} of cluster {self.cluster.name} missed "
                    f"{evidence['missed_slots']} heartbeats in a row.",
                    cluster=self.cluster,
                    server=server,
                    details=evidence,
                )
        server.state = ServerState.DOWN

    def _mirror_role(self, server: Server, body: dict) -> None:
        role = body.get("role")
        if role in ROLES and role != server.role:
            Server.objects.filter(pk=server.pk).update(role=role)
            server.role = role

    def _needs_secondary_config(self, body: dict) -> bool:
        """A returning old primary, or a wiped appliance: not secondary at the cluster's epoch."""
        if self.cluster.state == ClusterState.FAILING_OVER or self.cluster.failover_request is not None:
            return False
        return body.get("role") not in (Role.SECONDARY, Role.CANDIDATE) or body.get("epoch") != self.view.epoch

    def _open(self, incidents: Incidents, failure: EventType, message: str, server: Server, details: dict, name=""):
        return incidents.open(failure, message, cluster=self.cluster, server=server, details=details, name=name)

    def _close(self, incidents: Incidents, failure: EventType, message: str, server: Server, details: dict, name=""):
        return incidents.close(failure, message, cluster=self.cluster, server=server, details=details, name=name)

    def _checks(self, server: Server, body: dict, incidents: Incidents, is_primary: bool) -> None:
        threshold = self.view.threshold
        for service in body.get("services") or []:
            name = str(service.get("name", "?"))
            if not service.get("critical", True):
                continue
            failures = int(service.get("consecutive_failures") or 0)
            if not service.get("ok") and failures >= threshold:
                evidence = {"service": name, "consecutive_failures": failures, "rule": f"{threshold} failed checks"}
                message = f"Critical service {name} failed on {server.name} ({failures} checks in a row)."
                self._open(incidents, EventType.CRITICAL_SERVICE_FAILED, message, server, evidence, name)
                if is_primary:
                    self.failover_causes.append(("critical_service", evidence))
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

    def _skew(self, server: Server, incidents: Incidents, is_primary: bool) -> None:
        reading = self.skews.get(server.pk)
        if reading is None:
            return
        bad, offset, uncertainty, limit = reading
        streak = self._bump(server_key(server.pk), "skew_bad" if bad else "skew_good")
        evidence = {"offset_s": round(offset, 4), "uncertainty_s": round(uncertainty, 4), "limit_s": limit}
        if bad and streak >= SKEW_READINGS:
            self.state.redis.sadd(SKEWED_SET, server.pk)
            message = f"The clock of {server.name} is {offset:+.3f} s off; grants to it stopped."
            self._open(incidents, EventType.CLOCK_SKEW_DETECTED, message, server, {**evidence, "readings": streak})
            if is_primary:
                self.failover_causes.append(("clock_skew", evidence))
        elif (
            not bad
            and streak >= SKEW_READINGS
            and server.pk in self.skewed
            and self.state.redis.srem(SKEWED_SET, server.pk)
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
        streak = self._bump(link_key(self.cluster.pk), _streak(bad)[0])
        server = self.cluster.primary
        incidents = self._incidents(server.pk)
        evidence = {
            "control_plane_heartbeat_url": "failed" if cut_by_control_plane else "answered",
            "secondary_sees_primary": peer.get("ok"),
            "secondary_last_answer_age_s": peer.get("last_answer_age_s"),
            "readings": streak,
        }
        name = self.cluster.name
        if bad and streak >= self.view.threshold:
            message = (
                f"The heartbeat link of cluster {name} is down on one side; the primary still answers: no failover."
            )
            self._open(incidents, EventType.HEARTBEAT_LINK_DOWN, message, server, evidence)
        elif not bad and streak >= self.view.recovery_threshold and incidents.is_open(EventType.HEARTBEAT_LINK_DOWN):
            message = f"The heartbeat link of cluster {name} works again."
            self._close(incidents, EventType.HEARTBEAT_LINK_DOWN, message, server, evidence)

    def _cluster_state(self) -> None:
        cluster = self.cluster
        if cluster.state not in (ClusterState.HEALTHY, ClusterState.DEGRADED):
            return
        both_up = cluster.primary.state == ServerState.UP and cluster.secondary.state == ServerState.UP
        link_open = self._incidents(cluster.primary.pk).is_open(EventType.HEARTBEAT_LINK_DOWN)
        healthy = both_up and not link_open and cluster.replication_current()
        wanted = ClusterState.HEALTHY if healthy else ClusterState.DEGRADED
        if wanted != cluster.state:
            Cluster.objects.filter(pk=cluster.pk, state__in=[ClusterState.HEALTHY, ClusterState.DEGRADED]).update(
                state=wanted
            )
            cluster.state = wanted


def request_failover(cluster: Cluster, cause: str, server: Server, evidence: dict) -> bool:
    """Write the failover request on the cluster row and queue the failover task (§4a rule 5).

    Only for the primary seen at the epoch seen; re-queued on every later miss while it stands.
    A cluster that is syncing, inactive or in maintenance never fails over automatically.
    """
    from .tasks import run_failover

    if cluster.maintenance or not cluster.active or cluster.state == ClusterState.SYNCING:
        return False
    request = {
        "cause": cause,
        "server_id": server.pk,
        "seen_epoch": cluster.epoch,
        "requested_at": time.time(),
        "evidence": evidence,
    }
    written = Cluster.objects.filter(
        Q(failover_request__isnull=True), pk=cluster.pk, epoch=cluster.epoch, primary_id=server.pk, maintenance=False
    ).update(failover_request=request)
    if written or cluster.failover_request is not None:
        run_failover.apply_async((cluster.pk,), expires=30)
        return True
    return False
