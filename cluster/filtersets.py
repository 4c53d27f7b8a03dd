import django_filters

from dms_admin.filters import StrictFilterSet

from .models import Cluster, Deployment, ReplicationJob, Server


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
