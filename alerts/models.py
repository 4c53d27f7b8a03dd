"""Redundancy events: what happened, with its evidence, and who acknowledged it."""

from django.conf import settings
from django.db import models

from .choices import EventType, Severity


class Event(models.Model):
    type = models.CharField(max_length=40, choices=EventType.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    cluster = models.ForeignKey("cluster.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    server = models.ForeignKey("cluster.Server", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        # Newest first by id: ids grow with time, and keyset pages walk the primary key.
        ordering = ["-id"]
        indexes = [
            # Filtered pages of the alerts browser and GET /api/v1/events/?cluster=…/&type=…
            models.Index(fields=["cluster", "-id"], name="event_cluster_newest"),
            models.Index(fields=["server", "-id"], name="event_server_newest"),
            models.Index(fields=["type", "-id"], name="event_type_newest"),
            models.Index(fields=["severity", "-id"], name="event_severity_newest"),
            # ?since=/&until= date ranges.
            models.Index(fields=["created_at"], name="event_created_at"),
            # The dashboard's unacknowledged-alert counts.
            models.Index(
                fields=["cluster"], condition=models.Q(acknowledged_at__isnull=True), name="event_unacknowledged"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.message}"
