"""A slot's decisions carried out (`decisions.py`), in the order the evaluation gave them: rows
written by id and guarded by the state the batch saw, each failure or recovery event in the
transaction of its state change (`incidents.py`), and what is to be queued handed to the
caller, which owns the Celery tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.choices import EventType

from ..choices import ClusterState, IncidentOutcome, ServerState, StepKind
from ..incident_log import actor, new_incident_id, record_step
from ..models import Cluster, Server
from ..role_commands import adopt
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
    Queued,
    QueueFailover,
    QueueReconcile,
    ReconcileSecondary,
    RequestFailover,
    SetClusterState,
)
from .incidents import Incidents
from .state import HeartbeatState
from .views import ClusterView, ServerView

WORKER = "heartbeat worker"  # who decides, in an incident's story


class SlotWriter:
    """Carries out one cluster's decisions. `skewed`: the batch's copy of the skewed set (its probes
    read it); `queue`: called with what is to be queued, as soon as it is decided."""

    def __init__(
        self, state: HeartbeatState, view: ClusterView, incidents: dict[int, Incidents], skewed: set[int],
        queue: Callable[[Queued], None],
    ):  # fmt: skip
        self.state = state
        self.view = view
        self.incidents = incidents  # by server id
        self.skewed = skewed
        self.queue = queue
        self.opened: dict[tuple[int, str, str], int] = {}  # events opened in this slot
        self.last_answers: dict[int, float | None] = {}
        self._cluster: Cluster | None = None

    def apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            match decision:
                case MirrorRole():
                    self.mirror_role(decision)
                case Adopt():
                    self.adopt(decision)
                case MarkUp():
                    self.mark_up(decision)
                case MarkDown():
                    self.mark_down(decision)
                case OpenIncident():
                    self.open_incident(decision)
                case CloseIncident():
                    self.close_incident(decision)
                case MarkSkewed():
                    self.mark_skewed(decision)
                case ClockBack():
                    self.clock_back(decision)
                case ReconcileSecondary():
                    self.reconcile_secondary(decision)
                case SetClusterState():
                    self.set_cluster_state(decision)
                case RequestFailover():
                    self.request_failover(decision)

    # -- rows and events --------------------------------------------------------------------------
    def _rows(self, server: ServerView) -> tuple[Cluster, Server]:
        """The cluster and the server an event names (a transition: rare)."""
        if self._cluster is None:
            self._cluster = Cluster.objects.select_related("primary", "secondary").get(pk=self.view.id)
        servers = (self._cluster.primary, self._cluster.secondary)
        row = next((s for s in servers if s.pk == server.id), None) or Server.objects.get(pk=server.id)
        return self._cluster, row

    def _open(self, server: ServerView, failure: EventType, message: str, details: dict, name: str = ""):
        incidents = self.incidents[server.id]
        if incidents.is_open(failure, name):
            return None
        cluster, row = self._rows(server)
        event = incidents.open(failure, message, cluster=cluster, server=row, details=details, name=name)
        if event is not None:
            self.opened[(server.id, str(failure), name)] = event.pk
        return event

    def _close(self, server: ServerView, failure: EventType, message: str, details: dict, name: str = ""):
        cluster, row = self._rows(server)
        return self.incidents[server.id].close(
            failure, message, cluster=cluster, server=row, details=details, name=name
        )

    def _failure_event(self, ref: FailureRef) -> int | None:
        opened = self.opened.get((ref.server.id, str(ref.failure), ref.name))
        return opened or self.incidents[ref.server.id].open_event_id(ref.failure, ref.name)

    def _with_last_answer(self, server: ServerView, evidence: dict) -> dict:
        """A missed-heartbeats evidence completed with the server's last answer (Redis)."""
        if "last_answer_at" not in evidence:
            return evidence
        if server.id not in self.last_answers:
            self.last_answers[server.id] = self.state.last_answers([server.id]).get(server.id)
        return {**evidence, "last_answer_at": self.last_answers[server.id]}

    # -- one method per decision ------------------------------------------------------------------
    def mirror_role(self, decision: MirrorRole) -> None:
        Server.objects.filter(pk=decision.server.id).update(role=decision.role)

    def adopt(self, decision: Adopt) -> None:
        adopt(self.view.id, decision.epoch, decision.seq)

    def mark_up(self, decision: MarkUp) -> None:
        server, recovery = decision.server, None
        with transaction.atomic():
            changed = (
                Server.objects.filter(pk=server.id)
                .exclude(state=ServerState.UP)
                .update(state=ServerState.UP, last_heartbeat_at=timezone.now())
            )
            if changed:
                details = {"consecutive_answers": decision.answers}
                recovery = self._close(server, EventType.SERVER_FAILED, decision.message, details)
        if changed:
            record_step(
                self.view.id, StepKind.RECOVERED, worker=WORKER, event=recovery, server=server.name,
                answers=decision.answers,
            )  # fmt: skip

    def mark_down(self, decision: MarkDown) -> None:
        server = decision.server
        with transaction.atomic():
            changed = Server.objects.filter(pk=server.id).exclude(state=ServerState.DOWN).update(state=ServerState.DOWN)
            if changed:
                evidence = self._with_last_answer(server, decision.evidence)
                self._open(server, EventType.SERVER_FAILED, decision.message, evidence)

    def open_incident(self, decision: OpenIncident) -> None:
        self._open(decision.server, decision.failure, decision.message, decision.details, decision.name)

    def close_incident(self, decision: CloseIncident) -> None:
        self._close(decision.server, decision.failure, decision.message, decision.details, decision.name)

    def mark_skewed(self, decision: MarkSkewed) -> None:
        self.state.mark_skewed(decision.server.id)
        if decision.restored:
            self.skewed.add(decision.server.id)

    def clock_back(self, decision: ClockBack) -> None:
        if self.state.unmark_skewed(decision.close.server.id):
            self.close_incident(decision.close)

    def reconcile_secondary(self, decision: ReconcileSecondary) -> None:
        if self.state.claim_reconcile(self.view.id):
            self.queue(QueueReconcile(self.view.id))

    def set_cluster_state(self, decision: SetClusterState) -> None:
        changed = Cluster.objects.filter(
            pk=self.view.id, state__in=[ClusterState.HEALTHY, ClusterState.DEGRADED]
        ).update(state=decision.state)
        if changed and decision.healthy:
            record_step(self.view.id, StepKind.HEALTHY, worker=WORKER, close=IncidentOutcome.HEALTHY)

    def request_failover(self, decision: RequestFailover) -> None:
        """Write the failover request on the cluster row, and queue the failover task (§4a rule 5)."""
        view, evidence = self.view, decision.evidence
        if decision.failure is not None:
            evidence = self._with_last_answer(decision.failure.server, evidence)
            evidence = {**evidence, "failure_event": self._failure_event(decision.failure)}
        request = {
            "cause": decision.cause,
            "server_id": view.primary.id,
            "seen_epoch": view.epoch,
            "requested_at": time.time(),
            "evidence": evidence,
            "detected_by": actor(WORKER),
            "incident": new_incident_id(),  # the incident this request opens (cluster/incident_log.py)
        }
        undamped = Q()
        if decision.damping_window_s:
            since = timezone.now() - timedelta(seconds=decision.damping_window_s)
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
            self.queue(QueueFailover(view.id))
