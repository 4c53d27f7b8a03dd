"""The admin's side of the audit log: `AuditedAdmin` for the project's model admins (every save and
deletion recorded), and the log itself, read-only."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction

from .models import Action, AuditEntry
from .record import record, record_change, stored


class AuditedAdmin(admin.ModelAdmin):
    """Records creations, changes (with many-to-many fields, saved after the row) and deletions."""

    def save_model(self, request, obj, form, change):
        request._audit_before = stored(obj) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        record_change(request, form.instance, getattr(request, "_audit_before", None))

    def delete_model(self, request, obj):
        with transaction.atomic():
            record(request, Action.DELETED, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                record(request, Action.DELETED, obj)
            super().delete_queryset(request, queryset)


class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    """Users and their roles (groups): who gave whom which role. The password is only "changed"."""


class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass


for model, model_admin in ((get_user_model(), AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "username", "source", "action", "object_type", "object_name"]
    list_filter = ["action", "object_type", "source"]
    search_fields = ["username", "object_name"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
