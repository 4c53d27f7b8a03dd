from rest_framework import viewsets

from audit.api import AuditedViewSetMixin

from ..filtersets import LicenseFilterSet, PartNumberFilterSet, SoftwareModuleFilterSet
from ..models import License, PartNumber, SoftwareModule
from .serializers import LicenseSerializer, PartNumberSerializer, SoftwareModuleSerializer


class LicenseViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = License.objects.all()
    serializer_class = LicenseSerializer
    filterset_class = LicenseFilterSet


class SoftwareModuleViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = SoftwareModule.objects.all()
    serializer_class = SoftwareModuleSerializer
    filterset_class = SoftwareModuleFilterSet


class PartNumberViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = PartNumber.objects.all()
    serializer_class = PartNumberSerializer
    filterset_class = PartNumberFilterSet
