"""Pairing rules: the product sheet's rules for forming clusters and deployments (DESIGN §2), in
one place: part numbers, platforms, hardware, applications, deployments.

The admin, the REST API and the forms all reach these through `Cluster.clean()` and
`Server.clean()`, so they refuse the same things with the same messages. Each function returns
`{field: [message, ...]}`. The models import this module, never the other way round: what a rule
needs of other clusters it is handed (`others`, a queryset).
"""

from django.db.models import Q

from licensing.models import PartNumber

from .choices import Application, DeploymentKind, Platform
from .hardware import differing_fields

Errors = dict[str, list[str]]


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def cluster_rule_errors(*, name, application, primary, secondary, deployment, others, installed: bool) -> Errors:
    """`others`: the clusters other than this one (a queryset); `installed`: the cluster exists."""
    errors: Errors = {}
    if primary.pk is not None and primary.pk == secondary.pk:
        _add(errors, "secondary", "The secondary must be a different appliance from the primary.")
        return errors

    if primary.application != secondary.application:
        _add(
            errors,
            "secondary",
            f"The applications differ: the primary runs {primary.get_application_display()}, "
            f"the secondary {secondary.get_application_display()}.",
        )
    if application and primary.application != application:
        _add(
            errors,
            "application",
            f"The cluster's application must be the appliances' ({primary.get_application_display()}).",
        )

    for field, server in (("primary", primary), ("secondary", secondary)):
        if server.platform == Platform.MCS:
            _add(errors, field, f"{server.name} is an MCS-based appliance: migrate to a UCS appliance first.")

    for field, message in _pairing_errors(primary, secondary, installed=installed):
        _add(errors, field, message)

    if isinstance(primary.hardware, dict) and isinstance(secondary.hardware, dict):
        differing = differing_fields(primary.hardware, secondary.hardware)
        if differing:
            _add(
                errors,
                "secondary",
                "The hardware configurations must be identical; they differ in: " + ", ".join(differing) + ".",
            )

    for field, server in (("primary", primary), ("secondary", secondary)):
        if server.pk is None:
            continue
        taken = others.filter(Q(primary_id=server.pk) | Q(secondary_id=server.pk)).first()
        if taken:
            _add(errors, field, f"{server.name} already belongs to cluster {taken.name}.")

    if deployment is not None:
        for message in _deployment_errors(deployment, application or primary.application, others):
            _add(errors, "deployment", message)
    return errors


def server_part_errors(server) -> Errors:
    """A server's part number is one of the catalog's parts (primary or failover) for its own
    application; clusters check the pairing later (cluster_rule_errors)."""
    if not server.part_number or not server.application:
        return {}
    entry = PartNumber.objects.filter(Q(primary_part=server.part_number) | Q(failover_part=server.part_number)).first()
    if entry is None:
        return {
            "part_number": [
                f"Part number {server.part_number} is not in the part catalog: choose one of its primary or "
                f"failover parts (GET /api/v1/part-numbers/; admins add parts under Licensing › Part numbers)."
            ]
        }
    if entry.application != server.application:
        application = Application(server.application).label
        parts = PartNumber.objects.filter(application=server.application).values_list("primary_part", "failover_part")
        allowed = ", ".join(part for pair in parts for part in pair)
        return {
            "part_number": [
                f"Part number {server.part_number} is a {entry.get_application_display()} part: a {application} "
                f"appliance needs a {application} part ({allowed})."
            ]
        }
    return {}


def _pairing_errors(primary, secondary, *, installed: bool) -> list[tuple[str, str]]:
    """The part-number pairing. A new cluster's primary holds the primary part; an installed cluster
    may hold its pair either way round, since a failover makes the failover appliance the primary
    (and a failed-over cluster must stay editable, e.g. to put it into maintenance)."""
    entry = PartNumber.objects.filter(primary_part=primary.part_number).first()
    if entry is not None:
        if secondary.part_number == entry.failover_part:
            return []
        return [
            (
                "secondary",
                f"Wrong failover part: a {entry.primary_part} primary needs a {entry.failover_part} failover "
                f"appliance, not {secondary.part_number}.",
            )
        ]
    swapped = PartNumber.objects.filter(failover_part=primary.part_number).first() if installed else None
    if swapped is None:
        return [("primary", f"Part number {primary.part_number} is not a primary part in the part catalog.")]
    if secondary.part_number == swapped.primary_part:
        return []
    return [
        (
            "secondary",
            f"Wrong pairing: a {swapped.failover_part} appliance (primary since a failover) pairs with a "
            f"{swapped.primary_part} appliance, not {secondary.part_number}.",
        )
    ]


def _deployment_errors(deployment, application, others) -> list[str]:
    members = others.filter(deployment=deployment)
    if members.filter(application=application).exists():
        return [f"Deployment {deployment.name} already holds a {Application(application).label} cluster."]
    if deployment.kind == DeploymentKind.DIGITAL_SIGNS and application != Application.DMM:
        return ["A Digital Signs deployment holds one DMM cluster only."]
    if (
        deployment.kind == DeploymentKind.SHOW_AND_SHARE
        and application == Application.SNS
        and not members.filter(application=Application.DMM).exists()
    ):
        return ["A Show and Share deployment needs a DMM cluster: add the DMM cluster first."]
    return []


def removal_errors(cluster) -> Errors:
    """Why `cluster` may not leave its deployment (be deleted, moved or change application)."""
    deployment = cluster.deployment
    if (
        deployment is not None
        and deployment.kind == DeploymentKind.SHOW_AND_SHARE
        and cluster.application == Application.DMM
        and deployment.clusters.exclude(pk=cluster.pk).filter(application=Application.SNS).exists()
    ):
        return {
            "deployment": [
                f"A Show and Share deployment needs a DMM cluster: remove the SNS cluster from "
                f"{deployment.name} before its DMM cluster {cluster.name}."
            ]
        }
    return {}


def cluster_settings_errors(cluster) -> Errors:
    errors: Errors = {}
    interval = cluster.heartbeat_interval
    if interval is None:
        return errors
    if cluster.lease_s is not None and cluster.lease_s <= interval:
        _add(errors, "lease_s", "The lease must be longer than the heartbeat interval, or a lease ends between beats.")
    lease = cluster.effective_lease_s
    if cluster.max_grant_delay is not None and cluster.max_grant_delay >= lease / 2:
        _add(errors, "max_grant_delay", "The maximum grant delay must be under half the lease.")
    return errors
