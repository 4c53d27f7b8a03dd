from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Prefetch
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action, api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from audit.api import AuditedViewSetMixin
from dms_admin.api import as_drf_error
from dms_admin.redis import redis_client

from .. import actions
from ..filtersets import (
    ClusterFilterSet,
    DeploymentFilterSet,
    IncidentFilterSet,
    ReplicationJobFilterSet,
    ServerFilterSet,
)
from ..models import Cluster, Deployment, Incident, IncidentStep, ReplicationJob, Server
from ..replication_schedule import with_last_job
from ..story import story_of
from .serializers import (
    ClusterSerializer,
    DeploymentSerializer,
    IncidentSerializer,
    IncidentStorySerializer,
    MaintenanceSerializer,
    ReplicationJobSerializer,
    ServerSerializer,
)


class ServerViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = Server.objects.all()
    serializer_class = ServerSerializer
    filterset_class = ServerFilterSet


class ClusterViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = with_last_job(Cluster.objects.all())
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilterSet
    operator_actions = {"switchover", "replicate", "confirm_deletions", "maintenance"}

    @extend_schema(
        request=None, responses={202: inline_serializer("ReplicateAccepted", {"status": serializers.CharField()})}
    )
    @action(detail=True, methods=["post"])
    def replicate(self, request, pk=None):
        """Start a replication job now (202); the job list shows its progress."""
        outcome = actions.queue_replication(self.get_object(), request)
        return Response({"status": outcome.status}, status=202)

    @extend_schema(
        request=None, responses={202: inline_serializer("DeletionsConfirmed", {"status": serializers.CharField()})}
    )
    @action(detail=True, methods=["post"], url_path="confirm-deletions")
    def confirm_deletions(self, request, pk=None):
        """An operator confirms that a sharp shrink of the primary's files is intended (DESIGN §5)."""
        outcome = actions.confirm_deletions(self.get_object(), request)
        return Response({"status": outcome.status}, status=202)

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer("SwitchoverAccepted", {"status": serializers.CharField()}),
            409: inline_serializer("SwitchoverRefused", {"reasons": serializers.ListField()}),
        },
    )
    @action(detail=True, methods=["post"])
    def switchover(self, request, pk=None):
        """A planned swap of primary and secondary: 202 when it starts, 409 with the reasons."""
        outcome = actions.start_switchover(self.get_object().pk, request)
        if not outcome.started:
            return Response({"reasons": outcome.reasons}, status=409)
        return Response({"status": outcome.status}, status=202)

    @extend_schema(request=MaintenanceSerializer, responses=ClusterSerializer)
    @action(detail=True, methods=["post"])
    def maintenance(self, request, pk=None):
        """Maintenance on or off (`{"maintenance": true}`): an operator's action, unlike the other
        settings (admins, PATCH). While on, the control plane starts no automatic failover."""
        body = MaintenanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cluster = self.get_object()
        actions.set_maintenance(cluster, body.validated_data["maintenance"], request)
        return Response(self.get_serializer(self.get_queryset().get(pk=cluster.pk)).data)

    @extend_schema(request=None, responses=ServerSerializer)
    @action(detail=True, methods=["get"])
    def primary(self, request, pk=None):
        """The current primary, for scripts."""
        cluster = self.get_object()
        return Response(ServerSerializer(cluster.primary, context={"request": request}).data)

    def perform_destroy(self, instance):
        try:
            super().perform_destroy(instance)
        except ValidationError as error:
            raise as_drf_error(error) from error


class ReplicationJobViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ReplicationJob.objects.all()
    serializer_class = ReplicationJobSerializer
    filterset_class = ReplicationJobFilterSet


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    """Failovers and switchovers, newest first: the list says when, why and how long users were
    without service; one incident is its whole story, step by step (docs/operator-guide.md,
    "Reading a failover"). `?event=<id>` finds the incident an event belongs to."""

    queryset = Incident.objects.select_related("cluster", "old_primary", "new_primary").prefetch_related(
        Prefetch("steps", queryset=IncidentStep.objects.order_by("at", "id"))
    )
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilterSet

    @extend_schema(responses=IncidentStorySerializer)
    def retrieve(self, request, pk=None):
        incident = self.get_object()
        return Response(IncidentStorySerializer(incident, context={"story": story_of(incident)}).data)


class DeploymentViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = Deployment.objects.prefetch_related("clusters")
    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilterSet


@extend_schema(
    responses={
        200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField()}),
        503: inline_serializer("HealthDown", {"status": serializers.CharField(), "checks": serializers.DictField()}),
    }
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def health(request):
    """No auth (load balancers and monitors): 200 when the database and the broker answer, else 503."""
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    healthy = all(checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {k: "ok" if v else "down" for k, v in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _broker_ok() -> bool:
    try:
        return bool(redis_client().ping())
    except Exception:
        return False
