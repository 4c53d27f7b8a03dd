"""Factory-boy factories: valid objects by default, so a test states only what it changes."""

import copy

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from alerts.choices import SEVERITY_OF, EventType
from alerts.models import Event
from cluster.hardware import EXAMPLE as HARDWARE
from cluster.models import Cluster, Deployment, Server
from licensing.models import License, SoftwareModule


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def role(user, create, extracted, **kwargs):
        if extracted:
            # get_or_create: a transactional test before this one may have flushed the migration's rows.
            user.groups.add(Group.objects.get_or_create(name=extracted)[0])
        user.save()


class ServerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Server

    name = factory.Sequence(lambda n: f"dmm-{n:03d}")
    application = "dmm"
    part_number = "DMM-SVR-C210-K9"
    platform = "ucs"
    hardware = factory.LazyFunction(lambda: copy.deepcopy(HARDWARE))
    heartbeat_url = factory.Sequence(lambda n: f"http://127.0.0.1:{20000 + 2 * n}")
    intranet_url = factory.Sequence(lambda n: f"http://127.0.0.1:{20001 + 2 * n}")
    agent_token = "agent-secret-token"


class FailoverServerFactory(ServerFactory):
    name = factory.Sequence(lambda n: f"dmm-fa-{n:03d}")
    part_number = "DMM-FA-C210-K9"


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    name = factory.Sequence(lambda n: f"deployment-{n}")
    kind = "digital_signs"


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    name = factory.Sequence(lambda n: f"cluster-{n}")
    application = "dmm"
    primary = factory.SubFactory(ServerFactory)
    secondary = factory.SubFactory(FailoverServerFactory)


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    type = EventType.SERVER_FAILED
    severity = factory.LazyAttribute(lambda event: SEVERITY_OF[EventType(event.type)])
    message = factory.Sequence(lambda n: f"Appliance dmm-{n:03d} stopped answering heartbeats.")
    details = factory.LazyFunction(lambda: {"missed": 3})


class LicenseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = License

    server = factory.SubFactory(ServerFactory)
    name = factory.Sequence(lambda n: f"feature-{n}")
    key = factory.Sequence(lambda n: f"KEY-{n:06d}")


class SoftwareModuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SoftwareModule

    server = factory.SubFactory(ServerFactory)
    name = factory.Sequence(lambda n: f"module-{n}")
    version = "5.3.0"
