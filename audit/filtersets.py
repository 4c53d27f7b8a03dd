"""One FilterSet for the audit page and GET /api/v1/audit/."""

import django_filters

from .models import Action, AuditEntry, Source

MAX_ID = 2**63 - 1


class AuditEntryFilterSet(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="username", label="User name")
    action = django_filters.MultipleChoiceFilter(choices=Action.choices, distinct=False)
    source = django_filters.MultipleChoiceFilter(choices=Source.choices, distinct=False)
    object_type = django_filters.CharFilter(max_length=50)
    object_id = django_filters.NumberFilter(min_value=1, max_value=MAX_ID)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["user", "action", "source", "object_type", "object_id", "since", "until"]
