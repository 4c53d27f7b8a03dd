"""Event types and severities of DESIGN §7: the vocabulary shared by events, rules, traps and the MIB."""

from django.db import models


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.value]


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class EventType(models.TextChoices):
    SERVER_FAILED = "server_failed", "Server failed"
    SERVER_RECOVERED = "server_recovered", "Server recovered"
    CRITICAL_SERVICE_FAILED = "critical_service_failed", "Critical service failed"
    CRITICAL_SERVICE_RECOVERED = "critical_service_recovered", "Critical service recovered"
    COMPONENT_FAILED = "component_failed", "Component failed"
    COMPONENT_RECOVERED = "component_recovered", "Component recovered"
    HEARTBEAT_LINK_DOWN = "heartbeat_link_down", "Heartbeat link down"
    HEARTBEAT_LINK_RESTORED = "heartbeat_link_restored", "Heartbeat link restored"
    REPLICATION_FAILED = "replication_failed", "Replication failed"
    REPLICATION_RECOVERED = "replication_recovered", "Replication recovered"
    CLOCK_SKEW_DETECTED = "clock_skew_detected", "Clock skew detected"
    CLOCK_SKEW_RESOLVED = "clock_skew_resolved", "Clock skew resolved"
    FAILOVER_COMPLETED = "failover_completed", "Failover completed"
    FAILOVER_FAILED = "failover_failed", "Failover failed"
    FAILOVER_ABANDONED = "failover_abandoned", "Failover abandoned"
    SWITCHOVER_COMPLETED = "switchover_completed", "Switchover completed"
    SWITCHOVER_FAILED = "switchover_failed", "Switchover failed"
    INITIAL_SYNC_COMPLETED = "initial_sync_completed", "Initial sync completed"
    LICENSES_COPIED = "licenses_copied", "Licenses copied"


# Each failure and the recovery that closes it (DESIGN §7: a recovery is notified exactly when its
# failure was).
RECOVERY_OF = {
    EventType.SERVER_FAILED: EventType.SERVER_RECOVERED,
    EventType.CRITICAL_SERVICE_FAILED: EventType.CRITICAL_SERVICE_RECOVERED,
    EventType.COMPONENT_FAILED: EventType.COMPONENT_RECOVERED,
    EventType.HEARTBEAT_LINK_DOWN: EventType.HEARTBEAT_LINK_RESTORED,
    EventType.REPLICATION_FAILED: EventType.REPLICATION_RECOVERED,
    EventType.CLOCK_SKEW_DETECTED: EventType.CLOCK_SKEW_RESOLVED,
}
FAILURE_OF = {recovery: failure for failure, recovery in RECOVERY_OF.items()}

# What a new notification rule sends (alerts.models.default_event_types).
DEFAULT_EVENT_TYPES = frozenset(
    {
        *RECOVERY_OF,
        *RECOVERY_OF.values(),
        EventType.FAILOVER_COMPLETED,
        EventType.FAILOVER_FAILED,
        EventType.FAILOVER_ABANDONED,
        EventType.SWITCHOVER_FAILED,
    }
)

SEVERITY_OF = {
    EventType.SERVER_FAILED: Severity.CRITICAL,
    EventType.CRITICAL_SERVICE_FAILED: Severity.CRITICAL,
    EventType.COMPONENT_FAILED: Severity.WARNING,
    EventType.HEARTBEAT_LINK_DOWN: Severity.WARNING,
    EventType.REPLICATION_FAILED: Severity.WARNING,
    EventType.CLOCK_SKEW_DETECTED: Severity.WARNING,
    EventType.FAILOVER_COMPLETED: Severity.CRITICAL,
    EventType.FAILOVER_FAILED: Severity.CRITICAL,
    EventType.FAILOVER_ABANDONED: Severity.WARNING,
    EventType.SWITCHOVER_COMPLETED: Severity.INFO,
    EventType.SWITCHOVER_FAILED: Severity.WARNING,
    EventType.INITIAL_SYNC_COMPLETED: Severity.INFO,
    EventType.LICENSES_COPIED: Severity.INFO,
    **{recovery: Severity.INFO for recovery in RECOVERY_OF.values()},
}


class Channel(models.TextChoices):
    SNMP = "snmp", "SNMP"
    EMAIL = "email", "Email"


class SnmpVersion(models.TextChoices):
    V2C = "v2c", "SNMPv2c"
    V3 = "v3", "SNMPv3"


class SnmpMode(models.TextChoices):
    TRAP = "trap", "Trap (fire and forget)"
    INFORM = "inform", "Inform (acknowledged, retried)"


# The names SnmpTransport knows (alerts/transports/snmp.py AUTH_PROTOCOLS / PRIV_PROTOCOLS).
class AuthProtocol(models.TextChoices):
    NONE = "none", "None"
    MD5 = "md5", "MD5"
    SHA = "sha", "SHA-1"
    SHA224 = "sha224", "SHA-224"
    SHA256 = "sha256", "SHA-256"
    SHA384 = "sha384", "SHA-384"
    SHA512 = "sha512", "SHA-512"


class PrivProtocol(models.TextChoices):
    NONE = "none", "None"
    DES = "des", "DES"
    AES128 = "aes128", "AES-128"
    AES192 = "aes192", "AES-192"
    AES256 = "aes256", "AES-256"


# Algorithms too weak today, still offered for old SNMP managers but marked in the forms: MD5 (a
# broken hash) and DES (a 56-bit key); SHA-2 (RFC 7860) and AES (RFC 3826) replace them in USM.
WEAK_PROTOCOLS: dict[str, set[str]] = {"auth_protocol": {AuthProtocol.MD5}, "priv_protocol": {PrivProtocol.DES}}
WEAK_HELP = {
    "auth_protocol": "MD5 is weak (broken hash): use SHA-256 or better unless the manager knows only MD5.",
    "priv_protocol": "DES is weak (56-bit key, breakable): use AES unless the manager knows only DES.",
}


def marked_choices(field: str, choices) -> list[tuple[str, str]]:
    """`choices` with the weak ones labelled as such."""
    weak = WEAK_PROTOCOLS.get(field, set())
    return [(value, f"{label} — weak, avoid" if value in weak else label) for value, label in choices]


class DeliveryStatus(models.TextChoices):
    """Where one notification of one event to one rule stands (the outbox row)."""

    PENDING = "pending", "Pending"  # waiting for its (next) attempt at next_attempt_at
    SENDING = "sending", "Sending"  # claimed by a worker until claimed_until
    SENT = "sent", "Sent"  # handed to the network, no receipt possible (SNMP trap)
    DELIVERED = "delivered", "Delivered"  # acknowledged by the receiver (inform, SMTP)
    FAILED = "failed", "Failed"  # a permanent error: retrying cannot help
    EXPIRED = "expired", "Expired"  # still failing when it expired

    @classmethod
    def open(cls) -> list[str]:
        return [cls.PENDING, cls.SENDING]


class AttemptOutcome(models.TextChoices):
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # a transient error: retried
    REFUSED = "refused", "Refused"  # a permanent error
    INTERRUPTED = "interrupted", "Interrupted"  # the worker died mid-attempt (found by the sweeper)


# Colours the pages show severities and delivery statuses in (always next to the word).
COLOURS = {
    "info": "blue",
    "warning": "amber",
    "critical": "red",
    "pending": "grey",
    "sending": "blue",
    "sent": "green",
    "delivered": "green",
    "failed": "red",
    "expired": "amber",
}
