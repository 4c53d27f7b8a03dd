from django.conf import settings
from django.db import models


class Action(models.TextChoices):
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"
    SWITCHOVER = "switchover", "Switchover requested"
    MAINTENANCE_ON = "maintenance_on", "Maintenance on"
    MAINTENANCE_OFF = "maintenance_off", "Maintenance off"
    REPLICATION_STARTED = "replication_started", "Replication started"
    DELETIONS_CONFIRMED = "deletions_confirmed", "Deletions confirmed"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    TESTED = "tested", "Test notification sent"


class Source(models.TextChoices):
    PAGE = "page", "Page"
    ADMIN = "admin", "Admin"
    API = "api", "API"
    CLI = "cli", "dmsctl"


class AuditEntry(models.Model):
    """One action by one user. Append-only: nothing in the application updates or deletes a row.
    The user's name is copied, so the entry still says who after the account is deleted; the
    object's name too, so it still says what after the object is deleted."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    source = models.CharField(max_length=10, choices=Source.choices)
    action = models.CharField(max_length=30, choices=Action.choices)
    object_type = models.CharField(max_length=50)
    object_id = models.BigIntegerField(null=True)
    object_name = models.CharField(max_length=200, blank=True)
    # {field: [before, after]}; a secret field is {field: "changed"}, never its value.
    changes = models.JSONField(default=dict, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.object_type} {self.object_name}"
