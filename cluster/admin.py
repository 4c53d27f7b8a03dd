from django import forms
from django.contrib import admin
from django.utils.html import format_html

from audit.admin import AuditedAdmin

from .forms import ServerAdminForm
from .models import ApiToken, Cluster, Deployment, ReplicationJob, Server


@admin.register(Server)
class ServerAdmin(AuditedAdmin):
    list_display = ["name", "application", "part_number", "platform", "role", "state", "last_heartbeat_at"]
    list_filter = ["application", "platform", "role", "state"]
    search_fields = ["name", "part_number", "heartbeat_url", "intranet_url"]
    readonly_fields = ["role", "state", "last_heartbeat_at", "created_at"]
    form = ServerAdminForm
    fieldsets = [
        (None, {"fields": ["name", "application", "part_number", "platform"]}),
        ("Hardware", {"fields": ["cpu_model", "cpu_count", "memory_gb", "disks", "raid_level", "nic_count"]}),
        ("Agent", {"fields": ["heartbeat_url", "intranet_url", "web_url", "agent_token"]}),
        ("As reported (read-only)", {"fields": ["role", "state", "last_heartbeat_at", "created_at"]}),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "agent_token":
            # Secrets are write-only: never rendered back; an empty field keeps the stored token.
            kwargs["widget"] = forms.PasswordInput(render_value=False)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change and not form.cleaned_data.get("agent_token"):
            obj.agent_token = Server.objects.get(pk=obj.pk).agent_token
        super().save_model(request, obj, form, change)


@admin.register(Cluster)
class ClusterAdmin(AuditedAdmin):
    list_display = [
        "name",
        "application",
        "deployment",
        "state",
        "epoch",
        "primary_status",
        "secondary_status",
        "maintenance",
        "active",
        "last_failover_at",
    ]
    list_filter = ["application", "state", "maintenance", "active", "deployment"]
    search_fields = ["name", "primary__name", "secondary__name"]
    list_select_related = ["deployment", "primary", "secondary"]
    readonly_fields = [
        "primary_status",
        "secondary_status",
        "state",
        "epoch",
        "last_failover_at",
        "command_seq",
        "grant_fence_epoch",
        "failover_request",
        "pending_epoch",
        "claim_token",
        "candidacy_id",
        "step",
        "claimed_until",
        "created_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "application", "deployment", "primary", "secondary", "maintenance"]}),
        ("Appliances", {"fields": ["primary_status", "secondary_status", "state", "epoch", "last_failover_at"]}),
        (
            "Heartbeat and lease",
            {
                "fields": [
                    "heartbeat_interval",
                    "missed_heartbeats_threshold",
                    "recovery_threshold",
                    "lease_s",
                    "max_grant_delay",
                    "max_clock_skew",
                    "replication_interval",
                ]
            },
        ),
        (
            "Failover protocol (read-only)",
            {
                "classes": ["collapse"],
                "fields": [
                    "command_seq",
                    "grant_fence_epoch",
                    "failover_request",
                    "pending_epoch",
                    "claim_token",
                    "candidacy_id",
                    "step",
                    "claimed_until",
                    "created_at",
                ],
            },
        ),
    ]

    @admin.display(description="Primary")
    def primary_status(self, cluster):
        return _server_status(cluster.primary) if cluster.primary_id else "—"

    @admin.display(description="Secondary")
    def secondary_status(self, cluster):
        return _server_status(cluster.secondary) if cluster.secondary_id else "—"


def _server_status(server):
    return format_html(
        "{} — role <b>{}</b>, <b>{}</b>", server.name, server.get_role_display(), server.get_state_display()
    )


@admin.register(Deployment)
class DeploymentAdmin(AuditedAdmin):
    list_display = ["name", "kind", "description"]
    list_filter = ["kind"]
    search_fields = ["name"]


@admin.register(ReplicationJob)
class ReplicationJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "cluster",
        "kind",
        "state",
        "progress",
        "files_done",
        "bytes_done",
        "started_at",
        "finished_at",
    ]
    list_filter = ["kind", "state", "cluster"]
    list_select_related = ["cluster"]
    readonly_fields = [f.name for f in ReplicationJob._meta.fields] + ["progress"]

    def has_add_permission(self, request):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens are made by `manage.py create_api_token` (the key is shown once there); here an
    administrator sees whose exist and revokes one by deleting it."""

    list_display = ["user", "prefix", "created_at"]
    readonly_fields = ["user", "prefix", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
