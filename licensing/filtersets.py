from dms_admin.filters import StrictFilterSet

from .models import License, PartNumber, SoftwareModule


class LicenseFilterSet(StrictFilterSet):
    class Meta:
        model = License
        fields = ["server", "source", "name"]


class SoftwareModuleFilterSet(StrictFilterSet):
    class Meta:
        model = SoftwareModule
        fields = ["server", "source", "name"]


class PartNumberFilterSet(StrictFilterSet):
    class Meta:
        model = PartNumber
        fields = ["application", "platform"]
