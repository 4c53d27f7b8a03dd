from rest_framework import serializers

from ..models import Event


class EventSerializer(serializers.ModelSerializer):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True, default=None)
    server_name = serializers.CharField(source="server.name", read_only=True, default=None)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", read_only=True, default=None)

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
            "created_at",
            "acknowledged_at",
            "acknowledged_by",
        ]
        read_only_fields = fields
