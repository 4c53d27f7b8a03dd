"""One FilterSet for the alerts browser and GET /api/v1/events/ (STYLE: same filters, same class)."""

import django_filters
from django.db.models import Q

from dms_admin.filters import IdFilter, StrictFilterSet, TrueFalseFilter, UtcDateTimeFilter

from .choices import DeliveryStatus, EventType, Severity
from .models import Delivery, Event, NotificationRule


class EventFilterSet(StrictFilterSet):
    # distinct=False: these are columns of the event itself, so no row can repeat; django-filter's
    # default (distinct=True) made the query SELECT DISTINCT over every selected column, which sorts
    # all matching rows instead of walking an index for the first page (bench/alerts.py).
    type = django_filters.MultipleChoiceFilter(choices=EventType.choices, distinct=False)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices, distinct=False)
    cluster = IdFilter(field_name="cluster_id")
    server = IdFilter(field_name="server_id")
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    acknowledged = TrueFalseFilter(method="filter_acknowledged")
    q = django_filters.CharFilter(method="filter_text", label="Text in the message")

    class Meta:
        model = Event
        fields = ["type", "severity", "cluster", "server", "since", "until", "acknowledged", "q"]

    def filter_acknowledged(self, queryset, name, value):
        return queryset.filter(acknowledged_at__isnull=not value)

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(message__icontains=value[:200]))


class NotificationRuleFilterSet(StrictFilterSet):
    class Meta:
        model = NotificationRule
        fields = ["channel", "enabled"]


class DeliveryFilterSet(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=DeliveryStatus.choices, distinct=False)
    rule = IdFilter(field_name="rule_id")
    event = IdFilter(field_name="event_id")

    class Meta:
        model = Delivery
        fields = ["status", "rule", "event"]
