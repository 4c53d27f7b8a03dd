from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dms_admin.api import FullCleanSerializer

from ..choices import EventType
from ..models import SECRET_FIELDS, Delivery, Event, NotificationRule


class EventSerializer(serializers.ModelSerializer):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True, default=None, allow_null=True)
    server_name = serializers.CharField(source="server.name", read_only=True, default=None, allow_null=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Event
        fields = [
            "id",
            "type",
            "severity",
            "cluster",
            "cluster_name",
            "server",
            "server_name",
            "message",
            "details",
            "recovers",
            "created_at",
            "acknowledged_at",
            "acknowledged_by",
        ]
        read_only_fields = fields


class EventTypesField(serializers.MultipleChoiceField):
    """A list of EventType values, kept in the vocabulary's order; errors name the bad value."""

    def __init__(self, **kwargs):
        super().__init__(choices=EventType.choices, **kwargs)

    def to_internal_value(self, data):
        chosen = super().to_internal_value(data)
        return [value for value in EventType.values if value in chosen]

    def to_representation(self, value):
        return list(value)


class NotificationRuleSerializer(FullCleanSerializer):
    """Secrets (community, auth_key, priv_key) are write-only: answers say only whether one is set,
    and an update that leaves one out or blank keeps the stored value."""

    # Left out: every failure and recovery (the model's defaults); an empty list would send nothing.
    event_types = EventTypesField(
        required=False, allow_empty=False, error_messages={"empty": "Choose at least one event type."}
    )
    recipients = serializers.ListField(child=serializers.CharField(max_length=254), required=False)
    community_set = serializers.SerializerMethodField()
    auth_key_set = serializers.SerializerMethodField()
    priv_key_set = serializers.SerializerMethodField()

    class Meta:
        model = NotificationRule
        fields = [
            "id",
            "name",
            "channel",
            "enabled",
            "event_types",
            "clusters",
            "min_severity",
            "recipients",
            "host",
            "port",
            "snmp_version",
            "snmp_mode",
            "community",
            "community_set",
            "snmp_user",
            "auth_protocol",
            "auth_key",
            "auth_key_set",
            "priv_protocol",
            "priv_key",
            "priv_key_set",
            "last_delivery_at",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["last_delivery_at", "last_error", "created_at", "updated_at"]
        extra_kwargs = {name: {"write_only": True, "required": False} for name in SECRET_FIELDS}

    def validate(self, attrs):
        if self.instance is not None:
            for name in SECRET_FIELDS:
                if not attrs.get(name):
                    attrs.pop(name, None)  # blank or left out: keep the stored secret
            problems = NotificationRule.objects.get(pk=self.instance.pk).secrets_to_reenter(attrs)
            if problems:
                raise serializers.ValidationError({name: [message] for name, message in problems.items()})
        return super().validate(attrs)

    @extend_schema_field(serializers.BooleanField)
    def get_community_set(self, rule: NotificationRule) -> bool:
        return bool(rule.community)

    @extend_schema_field(serializers.BooleanField)
    def get_auth_key_set(self, rule: NotificationRule) -> bool:
        return bool(rule.auth_key)

    @extend_schema_field(serializers.BooleanField)
    def get_priv_key_set(self, rule: NotificationRule) -> bool:
        return bool(rule.priv_key)


class TestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    outcome = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class DeliverySerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "event_type",
            "rule",
            "rule_name",
            "status",
            "attempts",
            "next_attempt_at",
            "expires_at",
            "claimed_until",
            "last_error",
            "created_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields
