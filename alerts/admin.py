from django import forms
from django.contrib import admin

from audit.admin import AuditedAdmin

from .choices import WEAK_HELP, marked_choices
from .models import SECRET_FIELDS, Delivery, DeliveryAttempt, Event, NotificationRule, SnmpEngineId


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "severity", "type", "cluster", "server", "message", "acknowledged_at"]
    list_filter = ["severity", "type", "acknowledged_at"]
    search_fields = ["message"]
    list_select_related = ["cluster", "server"]
    readonly_fields = [
        "type",
        "severity",
        "cluster",
        "server",
        "message",
        "details",
        "recovers",
        "created_at",
        "acknowledged_at",
        "acknowledged_by",
    ]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


@admin.register(NotificationRule)
class NotificationRuleAdmin(AuditedAdmin):
    list_display = ["name", "channel", "enabled", "min_severity", "destination", "last_delivery_at", "last_error"]
    list_filter = ["channel", "enabled", "min_severity"]
    search_fields = ["name", "host"]
    readonly_fields = ["last_delivery_at", "last_error", "created_at", "updated_at"]
    filter_horizontal = ["clusters"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in SECRET_FIELDS:
            # Secrets are write-only: never rendered back; blank keeps the stored value.
            kwargs["widget"] = forms.PasswordInput(render_value=False)
            kwargs["required"] = False
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in WEAK_HELP:
            field.choices = marked_choices(db_field.name, field.choices)
            field.help_text = WEAK_HELP[db_field.name]
        return field

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        stored = {name: getattr(obj, name) for name in SECRET_FIELDS} if obj else {}

        class KeepSecrets(form):
            def clean(self):
                cleaned = super().clean()
                if obj is not None:
                    for name, message in NotificationRule.objects.get(pk=obj.pk).secrets_to_reenter(cleaned).items():
                        self.add_error(name, message)
                for name in SECRET_FIELDS:
                    if not cleaned.get(name) and stored.get(name):
                        cleaned[name] = stored[name]
                return cleaned

        return KeepSecrets


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "finished_at", "outcome", "error"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "rule", "status", "attempts", "next_attempt_at", "expires_at", "last_error"]
    list_filter = ["status", "rule"]
    list_select_related = ["event", "rule"]
    readonly_fields = [
        "event",
        "rule",
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
    inlines = [DeliveryAttemptInline]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


@admin.register(SnmpEngineId)
class SnmpEngineIdAdmin(admin.ModelAdmin):
    list_display = ["engine_id", "created_at"]
    readonly_fields = ["engine_id", "created_at"]

    def has_add_permission(self, request):
        return False
