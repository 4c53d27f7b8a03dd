"""The cluster app's models, one module per subject: the appliances, clusters and deployments
(`appliances`), what happened to them (`history`: replication jobs, incidents) and API tokens
(`tokens`). Import them from here."""

from .appliances import (
    NAME_VALIDATOR,
    TOKEN_DESTINATIONS,
    Cluster,
    Deployment,
    Server,
    effective_lease_s,
    field_label,
    replication_current,
    validate_hardware,
    validate_web_url,
)
from .history import Incident, IncidentStep, ReplicationJob
from .tokens import ApiToken, token_digest

__all__ = [
    "NAME_VALIDATOR",
    "TOKEN_DESTINATIONS",
    "ApiToken",
    "Cluster",
    "Deployment",
    "Incident",
    "IncidentStep",
    "ReplicationJob",
    "Server",
    "effective_lease_s",
    "field_label",
    "replication_current",
    "token_digest",
    "validate_hardware",
    "validate_web_url",
]
