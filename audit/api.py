"""The API's side of the audit log: `AuditedViewSetMixin` for the project's model viewsets, and
GET /api/v1/audit/ (operators and admins: the log names people and what they changed)."""

from django.db import transaction
from rest_framework import serializers, viewsets
from rest_framework.permissions import BasePermission

from dms_admin.pagination import BoundedCursorPagination
from dms_admin.permissions import OPERATOR, has_role

from .filtersets import AuditEntryFilterSet
from .models import Action, AuditEntry
from .record import record, record_change, stored


class AuditedViewSetMixin:
    """Records what a create, update or destroy through the API did, and who did it."""

    def perform_create(self, serializer):
        super().perform_create(serializer)
        record_change(self.request, serializer.instance, None)

    def perform_update(self, serializer):
        before = stored(serializer.instance)
        super().perform_update(serializer)
        record_change(self.request, serializer.instance, before)

    def perform_destroy(self, instance):
        with transaction.atomic():
            record(self.request, Action.DELETED, instance)
            super().perform_destroy(instance)


class OperatorReads(BasePermission):
    def has_permission(self, request, view) -> bool:
        return has_role(request.user, OPERATOR)


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "created_at",
            "user",
            "username",
            "source",
            "action",
            "object_type",
            "object_id",
            "object_name",
            "changes",
            "details",
        ]
        read_only_fields = fields


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Who did what, newest first: `changes` is {field: [before, after]}, a secret "changed"."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    pagination_class = BoundedCursorPagination
    permission_classes = [OperatorReads]
