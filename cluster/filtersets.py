import django_filters
from django.db.models import Q

from dms_admin.filters import IdFilter, StrictFilterSet, TrueFalseFilter, UtcDateTimeFilter

from .choices import FailoverCause
from .models import Cluster, Deployment, Incident, ReplicationJob, Server


class ServerFilterSet(StrictFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Server
        fields = ["name", "application", "platform", "part_number", "role", "state"]


class ClusterFilterSet(StrictFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Cluster
        fields = ["name", "application", "deployment", "state", "maintenance", "active"]


class DeploymentFilterSet(StrictFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Deployment
        fields = ["name", "kind"]


class ReplicationJobFilterSet(StrictFilterSet):
    class Meta:
        model = ReplicationJob
        fields = ["cluster", "kind", "state"]


class IncidentFilterSet(StrictFilterSet):
    cause = django_filters.ChoiceFilter(choices=FailoverCause.choices)
    open = TrueFalseFilter(field_name="closed_at", lookup_expr="isnull", label="Still open")
    since = UtcDateTimeFilter(field_name="opened_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="opened_at", lookup_expr="lte")
    event = IdFilter(method="of_event", label="The incident an event belongs to (its failure, failover or recovery)")

    class Meta:
        model = Incident
        fields = ["cluster", "cause", "open", "since", "until", "event"]

    def of_event(self, queryset, name, value):
        return queryset.filter(Q(failure_event_id=value) | Q(steps__event_id=value)).distinct()
