"""Redundancy events, the notification rules that send them, and the outbox of deliveries.

An event is written in the transaction that changes state; the deliveries it needs are written in
the same transaction (alerts/events.py) and sent afterwards from those rows (alerts/delivery.py).
"""

from __future__ import annotations

import ipaddress
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models
from django.db.models import Q

from dms_admin.encryption import EncryptedTextField

from .choices import (
    DEFAULT_EVENT_TYPES,
    SEVERITY_RANK,
    AttemptOutcome,
    AuthProtocol,
    Channel,
    DeliveryStatus,
    EventType,
    PrivProtocol,
    Severity,
    SnmpMode,
    SnmpVersion,
)

# USM derives keys from passphrases of at least 8 characters (RFC 3414 §11.2).
MIN_KEY_LENGTH = 8
SECRET_FIELDS = ("community", "auth_key", "priv_key")
# Where a rule's secrets go: a change of these needs them again (NotificationRule.secrets_to_reenter).
SECRET_DESTINATIONS = ("host", "port")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")


def default_event_types() -> list[str]:
    """What a new rule sends unless told otherwise: every failure (failovers and critical services
    among them) and its recovery. A rule saved as it comes must never keep a failover quiet; only the
    routine info events (a switchover done, a sync done, licenses copied) are left to be ticked."""
    return [t.value for t in EventType if t in DEFAULT_EVENT_TYPES]


def validate_host(value: str) -> None:
    """A hostname (RFC 1123) or an IPv4/IPv6 address."""
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    if not _HOSTNAME.match(value) or value.replace(".", "").isdigit():
        raise ValidationError(f"“{value}” is not a hostname or an IP address.", code="invalid_host")


class Event(models.Model):
    type = models.CharField(max_length=40, choices=EventType.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    cluster = models.ForeignKey("cluster.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    server = models.ForeignKey("cluster.Server", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    recovers = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recovered_by",
        help_text="The failure event this recovery closes (DESIGN §7).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        # Newest first by id: ids grow with time, and keyset pages walk the primary key.
        ordering = ["-id"]
        indexes = [
            # Filtered pages of the alerts browser and GET /api/v1/events/?cluster=…/&type=…
            models.Index(fields=["cluster", "-id"], name="event_cluster_newest"),
            models.Index(fields=["server", "-id"], name="event_server_newest"),
            models.Index(fields=["type", "-id"], name="event_type_newest"),
            models.Index(fields=["severity", "-id"], name="event_severity_newest"),
            # ?since=/&until= date ranges.
            models.Index(fields=["created_at"], name="event_created_at"),
            # The dashboard's unacknowledged-alert counts.
            models.Index(
                fields=["cluster"], condition=models.Q(acknowledged_at__isnull=True), name="event_unacknowledged"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.message}"


class NotificationRule(models.Model):
    """Which events to send where: an SNMP manager (trap or inform) or email recipients."""

    name = models.CharField(max_length=100, unique=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    enabled = models.BooleanField(default=True)
    event_types = models.JSONField(
        default=default_event_types, help_text="Event types this rule sends (EventType values)."
    )
    clusters = models.ManyToManyField(
        "cluster.Cluster", blank=True, related_name="+", help_text="Only events of these clusters; none: all clusters."
    )
    min_severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)

    # Email.
    recipients = models.JSONField(default=list, blank=True, help_text="Email addresses.")

    # SNMP. community, auth_key and priv_key are secrets: write-only in the API, never shown, encrypted
    # at rest (dms_admin/encryption.py).
    host = models.CharField(max_length=253, blank=True, validators=[validate_host])
    port = models.PositiveIntegerField(default=162, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    snmp_version = models.CharField(max_length=5, choices=SnmpVersion.choices, default=SnmpVersion.V2C)
    snmp_mode = models.CharField(max_length=10, choices=SnmpMode.choices, default=SnmpMode.TRAP)
    community = EncryptedTextField(max_length=100, blank=True)
    snmp_user = models.CharField("SNMPv3 user", max_length=64, blank=True)
    auth_protocol = models.CharField(max_length=10, choices=AuthProtocol.choices, default=AuthProtocol.SHA)
    auth_key = EncryptedTextField(max_length=100, blank=True)
    priv_protocol = models.CharField(max_length=10, choices=PrivProtocol.choices, default=PrivProtocol.AES128)
    priv_key = EncryptedTextField(max_length=100, blank=True)

    last_delivery_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if not isinstance(self.event_types, list) or not self.event_types:
            add("event_types", "Choose at least one event type.")
        else:
            unknown = [t for t in self.event_types if t not in EventType.values]
            if unknown:
                add("event_types", f"Unknown event types: {', '.join(map(str, unknown))}.")

        if self.channel == Channel.EMAIL:
            if not isinstance(self.recipients, list) or not self.recipients:
                add("recipients", "Give at least one email address.")
            else:
                for address in self.recipients:
                    try:
                        validate_email(address)
                    except ValidationError:
                        add("recipients", f"“{address}” is not a valid email address.")
        elif self.channel == Channel.SNMP:
            if not self.host:
                add("host", "Give the SNMP manager's hostname or IP address.")
            if self.snmp_version == SnmpVersion.V2C and not self.community:
                add("community", "SNMPv2c needs a community.")
            if self.snmp_version == SnmpVersion.V3:
                if not self.snmp_user:
                    add("snmp_user", "SNMPv3 needs a user name.")
                if self.priv_protocol != PrivProtocol.NONE and self.auth_protocol == AuthProtocol.NONE:
                    add("priv_protocol", "Privacy (authPriv) needs an authentication protocol too.")
                if self.auth_protocol != AuthProtocol.NONE and len(self.auth_key) < MIN_KEY_LENGTH:
                    add("auth_key", f"The authentication key needs at least {MIN_KEY_LENGTH} characters.")
                if self.priv_protocol != PrivProtocol.NONE and len(self.priv_key) < MIN_KEY_LENGTH:
                    add("priv_key", f"The privacy key needs at least {MIN_KEY_LENGTH} characters.")
        if errors:
            raise ValidationError(errors)

    def matches(self, event: Event, cluster_ids: set[int]) -> bool:
        """Whether this rule sends `event` (its clusters' ids given, to keep matching query-free)."""
        if not self.enabled or event.type not in self.event_types:
            return False
        if SEVERITY_RANK[event.severity] < SEVERITY_RANK[self.min_severity]:
            return False
        return not cluster_ids or event.cluster_id in cluster_ids

    def secrets_to_reenter(self, changes: dict) -> dict[str, str]:
        """The stored secrets a change would send to a new address, each with why it must be entered
        again: a community or key is never sent to a host or port chosen by someone who did not give
        it (docs/operator-guide.md). `changes` maps field names to new values, secrets blank when kept."""
        moved = [f for f in SECRET_DESTINATIONS if f in changes and str(changes[f]) != str(getattr(self, f))]
        if not moved or self.channel != Channel.SNMP:
            return {}
        after = {f: changes.get(f, getattr(self, f)) for f in ("snmp_version", "auth_protocol", "priv_protocol")}
        if after["snmp_version"] == SnmpVersion.V2C:
            in_use = ["community"]
        else:
            keys = (("auth_key", "auth_protocol"), ("priv_key", "priv_protocol"))
            in_use = [key for key, protocol in keys if after[protocol] != AuthProtocol.NONE]
        what = " and ".join(str(getattr(self._meta.get_field(f), "verbose_name", f)) for f in moved)
        return {
            name: f"The {what} changed: enter this secret again. A stored secret is never sent to a new address."
            for name in in_use
            if getattr(self, name) and not changes.get(name)
        }

    @property
    def destination(self) -> str:
        """Where it sends, for lists and logs: no secrets."""
        if self.channel == Channel.EMAIL:
            return ", ".join(self.recipients)
        who = f"user {self.snmp_user}" if self.snmp_version == SnmpVersion.V3 else "community ***"
        return f"{self.get_snmp_version_display()} {self.snmp_mode} to {self.host}:{self.port} ({who})"


class Delivery(models.Model):
    """The outbox: one notification of one event to one rule, retried until delivered or expired."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            # At most one delivery per event and rule, however often record_event's caller retries.
            models.UniqueConstraint(fields=["event", "rule"], name="delivery_one_per_event_and_rule"),
        ]
        indexes = [
            # The sweeper: open rows due (pending past next_attempt_at, sending past claimed_until).
            models.Index(
                fields=["next_attempt_at"], condition=Q(status__in=["pending", "sending"]), name="delivery_open_due"
            ),
            # GET /api/v1/deliveries/?rule=… and the rules page's per-rule history.
            models.Index(fields=["rule", "-id"], name="delivery_rule_newest"),
        ]

    def __str__(self) -> str:
        return f"event {self.event_id} → rule {self.rule_id}: {self.status}"


class DeliveryAttempt(models.Model):
    """One try of a delivery, written before sending and completed after (healthchecks' pattern)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=AttemptOutcome.choices, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome or 'running'}"


class SnmpEngineId(models.Model):
    """The product's one SNMP engine ID (DESIGN §9), generated once, when no setting names one."""

    engine_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "SNMP engine ID"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="snmp_engine_id_singleton")]

    def __str__(self) -> str:
        return self.engine_id
