from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dms_admin.api import FullCleanSerializer
from dms_admin.json_types import JsonTypesMixin
from dms_admin.moments import iso

from ..choices import INCIDENT_STATES, StepKind
from ..hardware import JSON_SCHEMA
from ..models import Cluster, Deployment, Incident, ReplicationJob, Server
from ..replication import DELETIONS_PAUSED
from ..story import Story, outage_of


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


class MillisecondsField(serializers.DateTimeField):
    """A time in ISO 8601, UTC, always with its milliseconds."""

    def to_representation(self, value):
        return iso(value) if value else None


class StoryEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    label = serializers.CharField()
    role = serializers.ChoiceField(choices=["failure", "failover", "recovery"])
    at = MillisecondsField()


class StoryStepSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=StepKind.choices)
    title = serializers.CharField()
    at = MillisecondsField(help_text="When it happened, on the recording host's clock.")
    offset_s = serializers.FloatField(help_text="Seconds since the story's first step.")
    actor = serializers.CharField(help_text="Who or what decided: a worker and its host, an operator, a job.")
    evidence = serializers.CharField(help_text="What it decided on, in words and units.")
    event = serializers.IntegerField(source="event.id", default=None, allow_null=True)
    facts = serializers.DictField(help_text="The recorded facts: seconds, epochs, names; times in ISO 8601.")


class OutageSerializer(serializers.Serializer):
    seconds = serializers.FloatField()
    start = MillisecondsField(help_text="The old primary's last moment known to serve.")
    end = MillisecondsField(help_text="The new primary serving (its promotion acknowledged).")
    bound = serializers.ChoiceField(
        choices=["at_most", "at_least"], help_text="Which way the users' real outage may differ from `seconds`."
    )
    start_basis = serializers.CharField()
    end_basis = serializers.CharField()
    derivation = serializers.CharField(help_text="How the length is derived, in words.")


class IncidentSerializer(serializers.ModelSerializer):
    """An incident in a list: when, why, between which appliances, how it ended and the outage."""

    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    old_primary_name = serializers.CharField(source="old_primary.name", default=None, allow_null=True)
    new_primary_name = serializers.CharField(source="new_primary.name", default=None, allow_null=True)
    state = serializers.SerializerMethodField()
    outage_s = serializers.SerializerMethodField()
    opened_at = MillisecondsField(read_only=True)
    closed_at = MillisecondsField(read_only=True, allow_null=True)

    class Meta:
        model = Incident
        fields = [
            "id",
            "cluster",
            "cluster_name",
            "cause",
            "state",
            "opened_at",
            "closed_at",
            "from_epoch",
            "old_primary",
            "old_primary_name",
            "new_primary",
            "new_primary_name",
            "failure_event",
            "outage_s",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=INCIDENT_STATES))
    def get_state(self, incident: Incident) -> str:
        return incident.outcome or "in_progress"

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_outage_s(self, incident: Incident) -> float | None:
        """From the steps the list prefetched (no query per incident)."""
        outage = outage_of(incident, list(incident.steps.all()))
        return outage.seconds if outage else None


class IncidentStorySerializer(IncidentSerializer):
    """One incident told in full (cluster/story/): the story comes in the context."""

    title = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    outage = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "title", "summary", "outage", "steps", "events"]
        read_only_fields = fields

    @property
    def story(self) -> Story:
        return self.context["story"]

    def get_outage_s(self, incident: Incident) -> float | None:
        return self.story.outage.seconds if self.story.outage else None

    @extend_schema_field(serializers.CharField)
    def get_title(self, incident: Incident) -> str:
        return self.story.title

    @extend_schema_field(serializers.CharField)
    def get_summary(self, incident: Incident) -> str:
        return self.story.summary

    @extend_schema_field(OutageSerializer(allow_null=True))
    def get_outage(self, incident: Incident) -> dict | None:
        return OutageSerializer(self.story.outage).data if self.story.outage else None

    @extend_schema_field(StoryStepSerializer(many=True))
    def get_steps(self, incident: Incident) -> list:
        return StoryStepSerializer(self.story.steps, many=True).data

    @extend_schema_field(StoryEventSerializer(many=True))
    def get_events(self, incident: Incident) -> list:
        return StoryEventSerializer(self.story.events, many=True).data
