"""The refusal rules of DESIGN §2 as data: each case builds the appliances (and deployment) of a
cluster that must be refused, and names the field and the words of the message."""

from collections.abc import Callable
from dataclasses import dataclass

from tests.factories import ClusterFactory, DeploymentFactory, FailoverServerFactory, ServerFactory


@dataclass
class Case:
    id: str
    build: Callable[[], dict]
    field: str
    words: str


def _wrong_failover_part():
    return {"primary": ServerFactory(), "secondary": FailoverServerFactory(part_number="SNS-FA-C210EN-K9")}


def _mcs_primary():
    return {"primary": ServerFactory(platform="mcs"), "secondary": FailoverServerFactory()}


def _hardware_differs():
    secondary = FailoverServerFactory()
    secondary.hardware["memory_gb"] = 24
    secondary.hardware["nic_count"] = 4
    secondary.save()
    return {"primary": ServerFactory(), "secondary": secondary}


def _applications_differ():
    return {
        "primary": ServerFactory(),
        "secondary": FailoverServerFactory(application="sns", part_number="DMM-FA-C210-K9"),
    }


def _already_in_cluster():
    taken = ClusterFactory(name="existing")
    return {"primary": taken.primary, "secondary": FailoverServerFactory()}


def _sns_without_dmm():
    deployment = DeploymentFactory(kind="show_and_share")
    return {
        "application": "sns",
        "deployment": deployment,
        "primary": ServerFactory(application="sns", part_number="SNS-SVR-C210EN-K9"),
        "secondary": FailoverServerFactory(application="sns", part_number="SNS-FA-C210EN-K9"),
    }


CASES = [
    Case("wrong-failover-part", _wrong_failover_part, "secondary", "needs a DMM-FA-C210-K9 failover"),
    Case("mcs-appliance", _mcs_primary, "primary", "migrate to a UCS appliance first"),
    Case("hardware-differs", _hardware_differs, "secondary", "differ in: memory_gb, nic_count"),
    Case("applications-differ", _applications_differ, "secondary", "applications differ"),
    Case("already-in-cluster", _already_in_cluster, "primary", "already belongs to cluster existing"),
    Case("sns-without-dmm", _sns_without_dmm, "deployment", "needs a DMM cluster"),
]
