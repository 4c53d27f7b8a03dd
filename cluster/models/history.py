"""What happened to a cluster: its replication jobs and its incidents (a failure or switchover,
step by step). cluster/replication.py and cluster/incident_log.py write them; cluster/story/
tells them."""

import uuid

from django.db import models
from django.db.models import Q

from ..choices import FailoverCause, IncidentOutcome, StepKind
from .appliances import Cluster, Server


class ReplicationJob(models.Model):
    """One copy from the primary to the secondary, followed by the control plane while the
    secondary's agent pulls the data straight from the primary (DESIGN §5)."""

    class Kind(models.TextChoices):
        INITIAL = "initial", "Initial sync"
        INCREMENTAL = "incremental", "Incremental"
        RESYNC = "resync", "Resync of a returning appliance"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        ABORTED = "aborted", "Aborted"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="replication_jobs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    source = models.ForeignKey(Server, null=True, on_delete=models.SET_NULL, related_name="+")
    target = models.ForeignKey(Server, null=True, on_delete=models.SET_NULL, related_name="+")
    epoch = models.PositiveIntegerField()
    sync_id = models.CharField(max_length=100, blank=True)
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    quarantined = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    alive_at = models.DateTimeField(auto_now_add=True, help_text="Last progress seen; a stale one lost its worker.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # At most one job per cluster at a time: the insert of a second one fails.
            models.UniqueConstraint(
                fields=["cluster"], condition=Q(state="running"), name="one_running_replication_per_cluster"
            )
        ]
        indexes = [models.Index(fields=["cluster", "-id"], name="replication_cluster_newest")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.cluster} ({self.state})"

    @property
    def progress(self) -> float:
        if self.state == self.State.SUCCEEDED:
            return 100.0
        if self.bytes_total:
            return round(100.0 * self.bytes_done / self.bytes_total, 1)
        if self.files_total:
            return round(100.0 * self.files_done / self.files_total, 1)
        return 0.0


class Incident(models.Model):
    """One failure of a cluster's primary that asked for a failover, or one planned switchover, from
    its first sign (the first missed heartbeat, the operator's request) to the cluster healthy again.

    Its id is made with the failover request and travels in it, so every worker that claims the
    request tells the same incident; `detection` keeps the request as written (what the heartbeat
    worker saw, or who asked). cluster/incident_log.py writes it, cluster/story/ tells it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="incidents")
    cause = models.CharField(max_length=30, choices=FailoverCause.choices)
    opened_at = models.DateTimeField(help_text="The first sign: the first missed heartbeat, or the request.")
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=IncidentOutcome.choices, blank=True, default="")
    from_epoch = models.PositiveIntegerField()
    old_primary = models.ForeignKey(Server, null=True, on_delete=models.SET_NULL, related_name="+")
    new_primary = models.ForeignKey(Server, null=True, on_delete=models.SET_NULL, related_name="+")
    detection = models.JSONField(default=dict, help_text="The failover request as it was written.")
    failure_event = models.ForeignKey("alerts.Event", null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-opened_at"]
        indexes = [
            # A cluster's incidents, newest first (its page, GET /api/v1/incidents/?cluster=…).
            models.Index(fields=["cluster", "-opened_at"], name="incident_cluster_newest"),
            # The open incident a later step belongs to (incident_log.record_step).
            models.Index(fields=["cluster"], condition=Q(closed_at__isnull=True), name="incident_open"),
        ]

    def __str__(self) -> str:
        return f"{self.cause.replace('_', ' ')} of cluster {self.cluster_id} at {self.opened_at:%Y-%m-%d %H:%M:%S}"


class IncidentStep(models.Model):
    """One thing the control plane did or saw during an incident: when (to the microsecond, on the
    recording host's clock), who or what decided, and the facts it decided on, in seconds and
    Unix times (cluster/story/ puts them in words)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="steps")
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    facts = models.JSONField(default=dict)
    event = models.ForeignKey("alerts.Event", null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%H:%M:%S.%f}"
