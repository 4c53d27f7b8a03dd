from rest_framework import viewsets

from ..filtersets import LicenseFilterSet, PartNumberFilterSet, SoftwareModuleFilterSet
from ..models import License, PartNumber, SoftwareModule
from .serializers import LicenseSerializer, PartNumberSerializer, SoftwareModuleSerializer


class LicenseViewSet(viewsets.ModelViewSet):
    queryset = License.objects.all()
    serializer_class = LicenseSerializer
    filterset_class = LicenseFilterSet


class SoftwareModuleViewSet(viewsets.ModelViewSet):
    queryset = SoftwareModule.objects.all()
    serializer_class = SoftwareModuleSerializer
    filterset_class = SoftwareModuleFilterSet


class PartNumberViewSet(viewsets.ModelViewSet):
    queryset = PartNumber.objects.all()
    serializer_class = PartNumberSerializer
    filterset_class = PartNumberFilterSet
