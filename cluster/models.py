"""Servers (appliances), clusters (a primary and its failover) and deployments."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from .choices import Application, ClusterState, DeploymentKind, FailoverStep, Platform, Role, ServerState
from .hardware import hardware_errors

NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "Use letters, digits, dots, dashes and underscores only, starting with a letter or digit.",
)


def validate_hardware(value):
    errors = hardware_errors(value)
    if errors:
        raise ValidationError(errors)


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


class Server(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[NAME_VALIDATOR])
    application = models.CharField(max_length=10, choices=Application.choices)
    part_number = models.CharField(max_length=40)
    platform = models.CharField(max_length=10, choices=Platform.choices, default=Platform.UCS)
    hardware = models.JSONField(validators=[validate_hardware])
    heartbeat_url = models.URLField(max_length=300, help_text="Base URL of the agent on the heartbeat network.")
    intranet_url = models.URLField(max_length=300, help_text="Base URL of the agent on the intranet.")
    agent_token = models.CharField(max_length=200, blank=True, help_text="Bearer token of the agent (write-only).")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.UNCONFIGURED, editable=False)
    state = models.CharField(max_length=10, choices=ServerState.choices, default=ServerState.UNKNOWN, editable=False)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.pk is None:
            return
        from .rules import cluster_rule_errors  # rules import models: import here to avoid a cycle

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
                cluster_pk=cluster.pk,
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

    # The failover protocol (DESIGN §4a rules 3, 5, 6, 12).
    command_seq = models.BigIntegerField(default=0, editable=False)
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

    def save(self, *args, **kwargs):
        creating = self._state.adding
        super().save(*args, **kwargs)
        if creating:
            from .lifecycle import cluster_created

            cluster_created(self)

    @property
    def effective_lease_s(self) -> float:
        return self.lease_s if self.lease_s is not None else 2 * self.heartbeat_interval

    def clean(self):
        from .rules import cluster_rule_errors, cluster_settings_errors, removal_errors

        errors = cluster_settings_errors(self)
        if self.primary_id and self.secondary_id:
            errors.update(
                cluster_rule_errors(
                    name=self.name,
                    application=self.application,
                    primary=self.primary,
                    secondary=self.secondary,
                    deployment=self.deployment,
                    cluster_pk=self.pk,
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
        from .rules import removal_errors

        errors = removal_errors(self)
        if errors:
            raise ValidationError(errors)
        return super().delete(*args, **kwargs)
