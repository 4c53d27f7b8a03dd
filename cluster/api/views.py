from django.core.exceptions import ValidationError
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny

from dms_admin.api import as_drf_error

from ..filtersets import ClusterFilterSet, DeploymentFilterSet, ServerFilterSet
from ..models import Cluster, Deployment, Server
from .serializers import ClusterSerializer, DeploymentSerializer, ServerSerializer


class ServerViewSet(viewsets.ModelViewSet):
    queryset = Server.objects.all()
    serializer_class = ServerSerializer
    filterset_class = ServerFilterSet


class ClusterViewSet(viewsets.ModelViewSet):
    queryset = Cluster.objects.all()
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilterSet

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ValidationError as error:
            raise as_drf_error(error) from error


class DeploymentViewSet(viewsets.ModelViewSet):
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
    from dms_admin.redis import redis_client

    try:
        return bool(redis_client().ping())
    except Exception:
        return False
