from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dms_admin.api import FullCleanSerializer
from dms_admin.json_types import JsonTypesMixin

from ..hardware import JSON_SCHEMA
from ..models import Cluster, Deployment, ReplicationJob, Server
from ..replication import DELETIONS_PAUSED


@extend_schema_field(JSON_SCHEMA)
class HardwareField(serializers.JSONField):
    """Checked by the model (cluster/hardware.py), which the schema describes."""


class ServerSerializer(FullCleanSerializer):
    hardware = HardwareField()

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
            "web_url",
            "agent_token",
            "role",
            "state",
            "last_heartbeat_at",
        ]
        read_only_fields = ["role", "state", "last_heartbeat_at"]
        extra_kwargs = {"agent_token": {"write_only": True, "required": False}}

    def validate(self, attrs):
        if self.instance is not None:
            if not attrs.get("agent_token"):
                attrs.pop("agent_token", None)  # blank or left out: keep the stored token
            stored = Server.objects.get(pk=self.instance.pk)
            problem = stored.token_to_reenter(attrs)
            if problem:
                raise serializers.ValidationError({"agent_token": [problem]})
        return super().validate(attrs)


class MaintenanceSerializer(JsonTypesMixin, serializers.Serializer):
    maintenance = serializers.BooleanField()


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
        now = timezone.now()
        last = cluster.last_replication_at
        job_state, job_error = getattr(cluster, "last_job_state", None), getattr(cluster, "last_job_error", "") or ""
        if cluster.needs_resync:
            state = "resync needed"
        elif job_error.startswith(DELETIONS_PAUSED):
            state = "deletions paused"
        else:
            state = job_state or "never"
        return {
            "state": state,
            "last_success_at": last,
            "lag_s": round((now - last).total_seconds(), 1) if last else None,
            "current": cluster.replication_current(now),
        }


class DeploymentSerializer(FullCleanSerializer):
    clusters = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Deployment
        fields = ["id", "name", "kind", "description", "clusters"]


class ReplicationJobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)
    files = serializers.IntegerField(source="files_done", read_only=True)
    bytes = serializers.IntegerField(source="bytes_done", read_only=True)

    class Meta:
        model = ReplicationJob
        fields = [
            "id",
            "cluster",
            "kind",
            "state",
            "progress",
            "files",
            "bytes",
            "files_total",
            "bytes_total",
            "deleted",
            "quarantined",
            "source",
            "target",
            "epoch",
            "started_at",
            "finished_at",
            "error",
        ]
        read_only_fields = fields
