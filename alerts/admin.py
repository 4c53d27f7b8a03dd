from django.contrib import admin

from .models import Event


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
        "created_at",
        "acknowledged_at",
        "acknowledged_by",
    ]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False
