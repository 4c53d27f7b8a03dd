"""One FilterSet for the audit page and GET /api/v1/audit/."""

import django_filters

from dms_admin.filters import IdFilter, StrictFilterSet, UtcDateTimeFilter

from .models import Action, AuditEntry, Source


class AuditEntryFilterSet(StrictFilterSet):
    user = django_filters.CharFilter(field_name="username", label="User name")
    action = django_filters.MultipleChoiceFilter(choices=Action.choices, distinct=False)
    source = django_filters.MultipleChoiceFilter(choices=Source.choices, distinct=False)
    object_type = django_filters.CharFilter(max_length=50)
    object_id = IdFilter()
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["user", "action", "source", "object_type", "object_id", "since", "until"]
