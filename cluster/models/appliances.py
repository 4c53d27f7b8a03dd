"""Servers (appliances), clusters (a primary and its failover) and deployments, with their field
validators. The pairing rules they are checked against are cluster/pairing.py's."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from dms_admin.encryption import EncryptedTextField

from .. import failover_rules
from ..choices import (
    Application,
    ClusterState,
    DeploymentKind,
    FailoverStep,
    Platform,
    Role,
    ServerState,
)
from ..hardware import hardware_errors
from ..pairing import cluster_rule_errors, cluster_settings_errors, removal_errors, server_part_errors

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
