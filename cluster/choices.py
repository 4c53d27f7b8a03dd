"""Status values of servers, clusters and deployments, each with the colour pages show it in."""

from django.db import models


class Application(models.TextChoices):
    DMM = "dmm", "Digital Media Manager"
    SNS = "sns", "Show and Share"


class Platform(models.TextChoices):
    UCS = "ucs", "UCS"
    MCS = "mcs", "MCS"


class Role(models.TextChoices):
    PRIMARY = "primary", "Primary"
    SECONDARY = "secondary", "Secondary"
    CANDIDATE = "candidate", "Candidate"
    UNCONFIGURED = "unconfigured", "Unconfigured"


class ServerState(models.TextChoices):
    UP = "up", "Up"
    DOWN = "down", "Down"
    UNKNOWN = "unknown", "Unknown"


class ClusterState(models.TextChoices):
    SYNCING = "syncing", "Syncing"
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    FAILING_OVER = "failing_over", "Failing over"


class DeploymentKind(models.TextChoices):
    DIGITAL_SIGNS = "digital_signs", "Digital Signs"
    SHOW_AND_SHARE = "show_and_share", "Show and Share"


class FailoverStep(models.TextChoices):
    """Steps of the failover task (DESIGN §4a), in order; the pause key names one of them."""

    NONE = "", "None"
    CLAIMED = "claimed", "Claimed"
    WITNESS = "witness", "Second witness"
    CANDIDACY = "candidacy", "Candidacy"
    WAIT = "wait", "Lease wait"
    PROMOTE = "promote", "Promote"
    COMMIT = "commit", "Commit"


class FailoverCause(models.TextChoices):
    """Why a failover was requested (failover_rules.AUTOMATIC, and an operator's switchover)."""

    MISSED_HEARTBEATS = "missed_heartbeats", "Missed heartbeats"
    CRITICAL_SERVICE = "critical_service", "Critical service failed"
    CLOCK_SKEW = "clock_skew", "Primary's clock skewed"
    AGENTS_DISAGREE = "agents_disagree", "Primary does not hold its role"
    NOT_SERVING = "not_serving", "Primary serves nobody"
    SWITCHOVER = "switchover", "Switchover"


class StepKind(models.TextChoices):
    """The steps of an incident's story (cluster/story/), in the order they usually come. The
    failover, reconcile and heartbeat workers record the ones marked *; the others are read from the
    failover request (what the heartbeat worker or the operator saw) and from the resync jobs."""

    LAST_ANSWER = "last_answer", "Last answer from the primary"
    MISSED = "missed", "Missed heartbeat"
    FAILURE = "failure", "Failure detected"
    REQUESTED = "requested", "Failover requested"
    CLAIMED = "claimed", "Claimed"  # *
    FENCED = "fenced", "Grants fenced"  # *
    WITNESS = "witness", "Second witness"  # *
    CANDIDACY = "candidacy", "Candidacy"  # *
    WAIT = "wait", "Lease wait"  # *
    PROMOTED = "promoted", "Promoted"  # *
    COMMITTED = "committed", "Committed"  # *
    DEMOTED = "demoted", "Old primary demoted"  # *
    ABANDONED = "abandoned", "Abandoned"  # *
    FAILED = "failed", "Failed"  # *
    LOST = "lost", "Claim lost"  # *
    RECOVERED = "recovered", "Server answers again"  # *
    REJOINED = "rejoined", "Rejoined as secondary"  # *
    RESYNC_STARTED = "resync_started", "Resync started"
    RESYNC_FINISHED = "resync_finished", "Resync finished"
    HEALTHY = "healthy", "Healthy again"  # *


class IncidentOutcome(models.TextChoices):
    """How an incident ended; blank while it is open (failing over, or running on one appliance)."""

    OPEN = "", "In progress"
    HEALTHY = "healthy", "Healthy again"
    ABANDONED = "abandoned", "Abandoned"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded by a later incident"


# An incident's state as the API and the pages name it: its outcome, or in progress while open.
INCIDENT_STATES = [("in_progress", "In progress"), *((v, label) for v, label in IncidentOutcome.choices if v)]


COLOURS = {
    "up": "green",
    "healthy": "green",
    "primary": "blue",
    "secondary": "grey",
    "candidate": "amber",
    "former_primary": "grey",  # the old primary after a failover, fenced (cluster/display.py)
    "syncing": "blue",
    "degraded": "amber",
    "failing_over": "red",
    "down": "red",
    "unknown": "grey",
    "unconfigured": "grey",
    # replication jobs
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "aborted": "amber",
    # incidents
    "in_progress": "amber",
    "abandoned": "grey",
    "superseded": "grey",
}
