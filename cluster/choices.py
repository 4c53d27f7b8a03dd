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
}
