import django_filters

from .models import Cluster, Deployment, ReplicationJob, Server


class ServerFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Server
        fields = ["name", "application", "platform", "part_number", "role", "state"]


class ClusterFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Cluster
        fields = ["name", "application", "deployment", "state", "maintenance", "active"]


class DeploymentFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Deployment
        fields = ["name", "kind"]


class ReplicationJobFilterSet(django_filters.FilterSet):
    class Meta:
        model = ReplicationJob
        fields = ["cluster", "kind", "state"]
