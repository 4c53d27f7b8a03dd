import django_filters

from .models import License, PartNumber, SoftwareModule


class LicenseFilterSet(django_filters.FilterSet):
    class Meta:
        model = License
        fields = ["server", "source", "name"]


class SoftwareModuleFilterSet(django_filters.FilterSet):
    class Meta:
        model = SoftwareModule
        fields = ["server", "source", "name"]


class PartNumberFilterSet(django_filters.FilterSet):
    class Meta:
        model = PartNumber
        fields = ["application", "platform"]
