"""The incident log: what the control plane did about a failure of a cluster's primary, or about an
operator's switchover, step by step (cluster/story/ tells it). Written where the pipeline passes
anyway, and never in its way:

- The failover worker keeps its steps in memory (`IncidentLog`) and writes them, with the incident
  row the first time, in one multi-row INSERT: during a lease wait with time to spare, once the new
  primary serves (after the commit), and when the run ends however it ends. Nothing is written
  between the claim and the promotion unless the pipeline is waiting anyway. A worker that dies
  mid-failover loses the steps it had not written yet; its successor's claim says it took over.
- The steps after a failover (the old primary answers again, rejoins as secondary, the cluster is
  healthy) are one INSERT each, on those transitions only (`record_step`).

Recording never stops a failover: a step that cannot be written is logged, and the caller goes on.
Times are the recording host's clock (Unix seconds in the facts), each step with who decided.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from django.db import transaction
from django.utils import timezone

from dms_admin.moments import from_unix

from .choices import IncidentOutcome, StepKind
from .models import Cluster, Incident, IncidentStep

log = logging.getLogger(__name__)

HOST = socket.gethostname()


def actor(worker: str) -> str:
    """Who decided: `failover worker on cp-1 (pid 4242)`."""
    return f"{worker} on {HOST} (pid {os.getpid()})"


def new_incident_id() -> str:
    """The id a failover request carries (the request is written before the incident row)."""
    return str(uuid.uuid4())


def opened_at(request: dict) -> float:
    """The incident's first sign: its first missed heartbeat, else the request."""
    evidence = request.get("evidence") or {}
    return float(evidence.get("first_missed_slot_at") or request.get("requested_at") or time.time())


class IncidentLog:
    """One failover worker's steps of the incident its claimed request names."""

    def __init__(self, cluster_id: int, worker: str = "failover worker"):
        self.cluster_id = cluster_id
        self.actor = actor(worker)
        self.incident: Incident | None = None
        self.saved = False
        self.pending: list[IncidentStep] = []

    def begin(self, cluster: Cluster) -> None:
        """The incident of the request this worker claimed (a request written before incidents were
        recorded gets one of its own)."""
        try:
            self.incident = self._incident(cluster)
        except Exception:
            log.exception("the incident of cluster %s's failover could not be noted", cluster.pk)

    @staticmethod
    def _incident(cluster: Cluster) -> Incident:
        request = cluster.failover_request or {}
        return Incident(
            id=request.get("incident") or new_incident_id(),
            cluster_id=cluster.pk,
            cause=str(request.get("cause", "missed_heartbeats")),
            opened_at=from_unix(opened_at(request)),
            from_epoch=cluster.epoch,
            old_primary_id=cluster.primary_id,
            new_primary_id=cluster.secondary_id,
            detection={key: value for key, value in request.items() if key != "incident"},
            failure_event_id=(request.get("evidence") or {}).get("failure_event"),
        )

    def step(self, kind: StepKind, *, at: float | None = None, event=None, **facts) -> None:
        """Note a step, to be written at the next `flush` (in memory: costs no I/O)."""
        if self.incident is None:
            return
        try:
            row = IncidentStep(
                incident_id=self.incident.pk,
                kind=kind,
                at=from_unix(at or time.time()),
                actor=self.actor,
                facts=facts,
                event=event,
            )
        except Exception:  # a story with a step missing, never a failover that stops
            log.exception("a %s step of incident %s could not be noted", kind, self.incident.pk)
            return
        self.pending.append(row)

    def flush(self) -> None:
        """Write the incident (the first time) and the steps noted since the last flush. Never call it
        inside a transaction of the pipeline: a row it could not write must not undo the pipeline's."""
        if self.incident is None or (self.saved and not self.pending):
            return
        try:
            with transaction.atomic():
                if not self.saved:
                    # Another worker of the same request may have written it first.
                    Incident.objects.bulk_create([self.incident], ignore_conflicts=True)
                    # A new incident ends any earlier one still open (a failure before healthy again).
                    Incident.objects.filter(cluster_id=self.cluster_id, closed_at__isnull=True).exclude(
                        pk=self.incident.pk
                    ).update(closed_at=timezone.now(), outcome=IncidentOutcome.SUPERSEDED)
                IncidentStep.objects.bulk_create(self.pending)
            self.saved = True
            self.pending = []
        except Exception:
            log.exception("the steps of incident %s could not be recorded", self.incident.pk)

    def close(self, outcome: IncidentOutcome) -> None:
        """Write what is pending, then end the incident."""
        self.flush()
        if self.incident is None or not self.saved:
            return
        try:
            Incident.objects.filter(pk=self.incident.pk, closed_at__isnull=True).update(
                closed_at=timezone.now(), outcome=outcome
            )
        except Exception:
            log.exception("incident %s could not be closed", self.incident.pk)


def record_step(
    cluster_id: int,
    kind: StepKind,
    *,
    worker: str,
    event=None,
    close: IncidentOutcome | None = None,
    **facts,
) -> None:
    """One step of the cluster's open incident, if it has one (a transition after a failover: the old
    primary back, rejoined, the cluster healthy); `close` ends the incident with that outcome. Call
    it after the transaction of the change it reports."""
    try:
        with transaction.atomic():
            incident_id = (
                Incident.objects.filter(cluster_id=cluster_id, closed_at__isnull=True)
                .order_by("-opened_at")
                .values_list("pk", flat=True)
                .first()
            )
            if incident_id is None:
                return
            now = timezone.now()
            IncidentStep.objects.create(
                incident_id=incident_id, kind=kind, at=now, actor=actor(worker), facts=facts, event=event
            )
            if close is not None:
                Incident.objects.filter(pk=incident_id).update(closed_at=now, outcome=close)
    except Exception:
        log.exception("a %s step of cluster %s could not be recorded", kind, cluster_id)
