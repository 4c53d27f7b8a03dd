"""Servers (appliances), clusters (a primary and its failover) and deployments."""

import hashlib
import secrets
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from dms_admin.encryption import EncryptedTextField

from . import failover_rules
from .choices import (
    Application,
    ClusterState,
    DeploymentKind,
    FailoverCause,
    FailoverStep,
    IncidentOutcome,
    Platform,
    Role,
    ServerState,
    StepKind,
)
from .hardware import hardware_errors
from .pairing import cluster_rule_errors, cluster_settings_errors, removal_errors, server_part_errors

NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "Use letters, digits, dots, dashes and underscores only, starting with a letter or digit.",
)


def validate_web_url(value):
    """Where end users go (GET /go/<cluster>/): a web address, http or https anywhere (it is not
    an agent URL), and no user name or password to leak through a redirect."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError("Use an http:// or https:// address.", code="web_url_scheme")
    if "@" in parts.netloc:
        raise ValidationError("Leave user names and passwords out of the address.", code="web_url_credentials")


def validate_hardware(value):
    errors = hardware_errors(value)
    if errors:
        raise ValidationError(errors)


def field_label(model: type[models.Model], name: str) -> str:
    """A field's verbose name, as a page shows it."""
    return str(getattr(model._meta.get_field(name), "verbose_name", name))


def effective_lease_s(lease_s: float | None, heartbeat_interval: float) -> float:
    return lease_s if lease_s is not None else 2 * heartbeat_interval


def replication_current(last_replication_at, needs_resync: bool, replication_interval: int, now=None) -> bool:
    if last_replication_at is None or needs_resync:
        return False
    now = now or timezone.now()
    return (now - last_replication_at).total_seconds() <= 2 * replication_interval


class Deployment(models.Model):
    """A Digital Signs deployment (one DMM cluster) or a Show and Share one (a DMM and an SNS cluster)."""

    name = models.CharField(max_length=100, unique=True, validators=[NAME_VALIDATOR])
    kind = models.CharField(max_length=20, choices=DeploymentKind.choices)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# Where the control plane sends a server's agent token (and, as `peer_url`, its peer does).
TOKEN_DESTINATIONS = ("heartbeat_url", "intranet_url")


class Server(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[NAME_VALIDATOR])
    application = models.CharField(max_length=10, choices=Application.choices)
    part_number = models.CharField(max_length=40)
    platform = models.CharField(max_length=10, choices=Platform.choices, default=Platform.UCS)
    hardware = models.JSONField(validators=[validate_hardware])
    heartbeat_url = models.URLField(max_length=300, help_text="Base URL of the agent on the heartbeat network.")
    intranet_url = models.URLField(max_length=300, help_text="Base URL of the agent on the intranet.")
    web_url = models.URLField(
        max_length=300,
        blank=True,
        validators=[validate_web_url],
        help_text="The address end users open for this appliance's application (e.g. https://dmm-a.example.com/); "
        "GET /go/<cluster>/ redirects there, or to the intranet URL when empty.",
    )
    agent_token = EncryptedTextField(
        max_length=200, blank=True, help_text="Bearer token of the agent (write-only, encrypted at rest)."
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.UNCONFIGURED, editable=False)
    state = models.CharField(max_length=10, choices=ServerState.choices, default=ServerState.UNKNOWN, editable=False)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def token_to_reenter(self, changes: dict) -> str:
        """Why a change needs the agent token again, or "": the control plane sends the stored token
        to whatever address it has, so an address changed by someone who does not know the token
        must not take it along (docs/operator-guide.md). `changes` maps field names to new values,
        the token blank when it is to be kept."""
        moved = [f for f in TOKEN_DESTINATIONS if f in changes and changes[f] != getattr(self, f)]
        if not moved or changes.get("agent_token") or not self.agent_token:
            return ""
        return (
            f"The {' and '.join(field_label(Server, f) for f in moved)} changed: enter the agent "
            "token again. A stored token is never sent to a new address."
        )

    def clean(self):
        errors = server_part_errors(self)
        if errors:
            raise ValidationError(errors)
        if self.pk is None:
            return
        for cluster in Cluster.objects.filter(Q(primary=self) | Q(secondary=self)).select_related(
            "primary", "secondary", "deployment"
        ):
            primary = self if cluster.primary_id == self.pk else cluster.primary
            secondary = self if cluster.secondary_id == self.pk else cluster.secondary
            errors = cluster_rule_errors(
                name=cluster.name,
                application=cluster.application,
                primary=primary,
                secondary=secondary,
                deployment=cluster.deployment,
                others=Cluster.objects.exclude(pk=cluster.pk),
                installed=True,
            )
            if errors:
                raise ValidationError(
                    [f"This change breaks cluster {cluster.name}: {m}" for ms in errors.values() for m in ms]
                )


class Cluster(models.Model):
    """A DMS cluster. Its failover-protocol fields (DESIGN §4a) are written only by the failover task."""

    name = models.CharField(max_length=100, unique=True, validators=[NAME_VALIDATOR])
    application = models.CharField(max_length=10, choices=Application.choices)
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.PROTECT, related_name="clusters")
    primary = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="+")
    secondary = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="+")
    epoch = models.PositiveIntegerField(default=1, editable=False)
    state = models.CharField(max_length=20, choices=ClusterState.choices, default=ClusterState.SYNCING, editable=False)

    heartbeat_interval = models.FloatField(
        default=2.0, validators=[MinValueValidator(0.2), MaxValueValidator(60)], help_text="Seconds."
    )
    missed_heartbeats_threshold = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(2), MaxValueValidator(20)]
    )
    recovery_threshold = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    lease_s = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.2), MaxValueValidator(600)],
        help_text="Seconds; empty means 2 × heartbeat interval.",
    )
    max_grant_delay = models.FloatField(default=0.25, validators=[MinValueValidator(0.01), MaxValueValidator(5)])
    max_clock_skew = models.FloatField(default=0.1, validators=[MinValueValidator(0.0), MaxValueValidator(5)])
    replication_interval = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(10), MaxValueValidator(86400)], help_text="Seconds."
    )
    maintenance = models.BooleanField(default=False)
    active = models.BooleanField(default=False, help_text="Set once the initial sync has completed.")
    last_failover_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Replication (DESIGN §5): "current" is a success within 2 × the replication interval.
    last_replication_at = models.DateTimeField(null=True, blank=True, editable=False)
    needs_resync = models.BooleanField(
        default=False, editable=False, help_text="A returning appliance must be resynced before healthy."
    )
    deletions_confirmed = models.BooleanField(
        default=False, editable=False, help_text="An operator allowed the next job's sharp shrink."
    )

    # The failover protocol (DESIGN §4a rules 3, 5, 6, 12).
    command_seq = models.BigIntegerField(default=0, editable=False)
    # The highest epoch any agent was seen to hold (409 answers, heartbeats): a promotion never
    # reuses it, even when the database's own epoch is lower (a restored database, an interrupted
    # failover that had demoted the old primary at the pending epoch).
    epoch_floor = models.PositiveIntegerField(default=0, editable=False)
    # While a change of timing is not yet acknowledged by both agents, the longest lease that any
    # granter may still be granting, old or new (every lease wait uses it); null once both hold
    # the current settings.
    lease_bound_s = models.FloatField(null=True, blank=True, editable=False)
    settings_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    grant_fence_epoch = models.PositiveIntegerField(default=1, editable=False)
    failover_request = models.JSONField(null=True, blank=True, editable=False)
    pending_epoch = models.PositiveIntegerField(null=True, blank=True, editable=False)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    candidacy_id = models.UUIDField(null=True, blank=True, editable=False)
    step = models.CharField(max_length=20, choices=FailoverStep.choices, blank=True, default="", editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    fault_pause = models.CharField(
        max_length=20,
        choices=FailoverStep.choices,
        blank=True,
        default="",
        editable=False,
        help_text="Tests only: the failover task stops before this step.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(primary=models.F("secondary")), name="cluster_two_appliances"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_lease_s(self) -> float:
        return effective_lease_s(self.lease_s, self.heartbeat_interval)

    @property
    def longest_lease_s(self) -> float:
        """What a lease wait must assume a granter may have granted: the current lease, or a
        longer one from before a settings change that the agents have not acknowledged yet."""
        return failover_rules.longest_lease_s(self.effective_lease_s, self.lease_bound_s)

    def replication_current(self, now=None) -> bool:
        return replication_current(self.last_replication_at, self.needs_resync, self.replication_interval, now)

    def clean(self):
        errors = cluster_settings_errors(self)
        if self.primary_id and self.secondary_id:
            errors.update(
                cluster_rule_errors(
                    name=self.name,
                    application=self.application,
                    primary=self.primary,
                    secondary=self.secondary,
                    deployment=self.deployment,
                    others=Cluster.objects.exclude(pk=self.pk) if self.pk else Cluster.objects.all(),
                    installed=self.pk is not None,
                )
            )
        if self.pk is not None:
            previous = Cluster.objects.filter(pk=self.pk).select_related("deployment").first()
            if previous and (previous.deployment_id != self.deployment_id or previous.application != self.application):
                for field, messages in removal_errors(previous).items():
                    errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors)

    def delete(self, *args, **kwargs):
        errors = removal_errors(self)
        if errors:
            raise ValidationError(errors)
        return super().delete(*args, **kwargs)


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
    worker saw, or who asked). cluster/incident_log.py writes it, cluster/story.py tells it.
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
    Unix times (cluster/story.py puts them in words)."""

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


def token_digest(key: str) -> str:
    """What the database keeps of an API token: its SHA-256. The token is 256 random bits, so a fast
    hash suffices (no password to guess), and a lookup by digest is one index probe."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A user's API token (`Authorization: Token <key>`), stored hashed: the key is shown once, when
    made (`manage.py create_api_token`), and a database dump holds nothing that authenticates."""

    digest = models.CharField(max_length=64, unique=True, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    prefix = models.CharField(max_length=8, editable=False, help_text="The key's first characters, to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user) -> str:
        """A new token for `user`, replacing any it had; returns the key, which is not kept."""
        key = secrets.token_urlsafe(32)
        with transaction.atomic():
            cls.objects.filter(user=user).delete()
            cls.objects.create(user=user, digest=token_digest(key), prefix=key[:8])
        return key
