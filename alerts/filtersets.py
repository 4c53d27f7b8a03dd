"""One FilterSet for the alerts browser and GET /api/v1/events/ (STYLE: same filters, same class)."""

import django_filters
from django.db.models import Q

from .choices import DeliveryStatus, EventType, Severity
from .models import Delivery, Event, NotificationRule

MAX_ID = 2**63 - 1  # ids are bigints: a larger number is refused as a bad filter, not sent to the database


class EventFilterSet(django_filters.FilterSet):
    # distinct=False: these are columns of the event itself, so no row can repeat; django-filter's
    # default (distinct=True) made the query SELECT DISTINCT over every selected column, which sorts
    # all matching rows instead of walking an index for the first page (bench/alerts.py).
    type = django_filters.MultipleChoiceFilter(choices=EventType.choices, distinct=False)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices, distinct=False)
    cluster = django_filters.NumberFilter(field_name="cluster_id", min_value=1, max_value=MAX_ID)
    server = django_filters.NumberFilter(field_name="server_id", min_value=1, max_value=MAX_ID)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    acknowledged = django_filters.BooleanFilter(method="filter_acknowledged")
    q = django_filters.CharFilter(method="filter_text", label="Text in the message")

    class Meta:
        model = Event
        fields = ["type", "severity", "cluster", "server", "since", "until", "acknowledged", "q"]

    def filter_acknowledged(self, queryset, name, value):
        return queryset.filter(acknowledged_at__isnull=not value)

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(message__icontains=value[:200]))


class NotificationRuleFilterSet(django_filters.FilterSet):
    class Meta:
        model = NotificationRule
        fields = ["channel", "enabled"]


class DeliveryFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=DeliveryStatus.choices, distinct=False)
    rule = django_filters.NumberFilter(field_name="rule_id", min_value=1, max_value=MAX_ID)
    event = django_filters.NumberFilter(field_name="event_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = Delivery
        fields = ["status", "rule", "event"]
