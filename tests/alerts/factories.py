"""Factories for notification rules and deliveries: valid by default."""

from datetime import timedelta

import factory
from django.utils import timezone

from alerts.models import Delivery, NotificationRule
from tests.factories import EventFactory

# What a new rule sends unless told otherwise (issue 12): every failure, failover and critical-service
# event and every recovery; only switchover_completed, initial_sync_completed and licenses_copied not.
SAFE_DEFAULTS = [
    "server_failed",
    "server_recovered",
    "critical_service_failed",
    "critical_service_recovered",
    "component_failed",
    "component_recovered",
    "heartbeat_link_down",
    "heartbeat_link_restored",
    "replication_failed",
    "replication_recovered",
    "clock_skew_detected",
    "clock_skew_resolved",
    "failover_completed",
    "failover_failed",
    "failover_abandoned",
    "switchover_failed",
]


class SnmpRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NotificationRule
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"snmp-rule-{n}")
    channel = "snmp"
    host = "127.0.0.1"
    port = 16200
    snmp_version = "v2c"
    community = "s3cret-community"

    @factory.post_generation
    def clusters(rule, create, extracted, **kwargs):
        if extracted:
            rule.clusters.set(extracted)


class V3RuleFactory(SnmpRuleFactory):
    snmp_version = "v3"
    community = ""
    snmp_user = "dmsuser"
    auth_protocol = "sha"
    auth_key = "dms-auth-key-1"
    priv_protocol = "aes128"
    priv_key = "dms-priv-key-1"


class EmailRuleFactory(SnmpRuleFactory):
    name = factory.Sequence(lambda n: f"email-rule-{n}")
    channel = "email"
    host = ""
    community = ""
    recipients = factory.LazyFunction(lambda: ["noc@example.com"])


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    event = factory.SubFactory(EventFactory)
    rule = factory.SubFactory(SnmpRuleFactory)
    next_attempt_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))
