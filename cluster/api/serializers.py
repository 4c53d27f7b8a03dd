from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dms_admin.api import FullCleanSerializer

from ..models import Cluster, Deployment, Server


class ServerSerializer(FullCleanSerializer):
    class Meta:
        model = Server
        fields = [
            "id",
            "name",
            "application",
            "part_number",
            "platform",
            "hardware",
            "heartbeat_url",
            "intranet_url",
            "agent_token",
            "role",
            "state",
            "last_heartbeat_at",
        ]
        read_only_fields = ["role", "state", "last_heartbeat_at"]
        extra_kwargs = {"agent_token": {"write_only": True, "required": False}}


class FailoverSerializer(serializers.Serializer):
    step = serializers.CharField()
    pending_epoch = serializers.IntegerField(allow_null=True)
    claimed_until = serializers.DateTimeField(allow_null=True)


class ReplicationSerializer(serializers.Serializer):
    state = serializers.CharField()
    last_success_at = serializers.DateTimeField(allow_null=True)
    lag_s = serializers.FloatField(allow_null=True)
    current = serializers.BooleanField()


class ClusterSerializer(FullCleanSerializer):
    failover = serializers.SerializerMethodField()
    replication = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        fields = [
            "id",
            "name",
            "application",
            "deployment",
            "primary",
            "secondary",
            "state",
            "epoch",
            "heartbeat_interval",
            "missed_heartbeats_threshold",
            "recovery_threshold",
            "lease_s",
            "max_grant_delay",
            "max_clock_skew",
            "replication_interval",
            "maintenance",
            "active",
            "last_failover_at",
            "failover",
            "replication",
        ]
        read_only_fields = ["state", "epoch", "active", "last_failover_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["lease_s"] = instance.effective_lease_s
        return data

    @extend_schema_field(FailoverSerializer)
    def get_failover(self, cluster: Cluster) -> dict:
        return {"step": cluster.step, "pending_epoch": cluster.pending_epoch, "claimed_until": cluster.claimed_until}

    @extend_schema_field(ReplicationSerializer)
    def get_replication(self, cluster: Cluster) -> dict:
        # Replication jobs arrive with their own issue; until then nothing has been replicated.
        return {"state": "never", "last_success_at": None, "lag_s": None, "current": False}


class DeploymentSerializer(FullCleanSerializer):
    clusters = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Deployment
        fields = ["id", "name", "kind", "description", "clusters"]
