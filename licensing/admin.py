from django.contrib import admin

from audit.admin import AuditedAdmin

from .models import License, PartNumber, SoftwareModule


@admin.register(PartNumber)
class PartNumberAdmin(AuditedAdmin):
    list_display = ["primary_part", "failover_part", "application", "edition", "platform"]
    list_filter = ["application", "platform"]
    search_fields = ["primary_part", "failover_part", "edition"]


@admin.register(License)
class LicenseAdmin(AuditedAdmin):
    list_display = ["name", "server", "quantity", "expires_at", "source", "updated_at"]
    list_filter = ["source"]
    search_fields = ["name", "server__name"]
    list_select_related = ["server"]
    readonly_fields = ["source", "updated_at"]


@admin.register(SoftwareModule)
class SoftwareModuleAdmin(AuditedAdmin):
    list_display = ["name", "version", "server", "source", "updated_at"]
    list_filter = ["source"]
    search_fields = ["name", "server__name"]
    list_select_related = ["server"]
    readonly_fields = ["source", "updated_at"]
