from dms_admin.api import FullCleanSerializer

from ..models import License, PartNumber, SoftwareModule


class LicenseSerializer(FullCleanSerializer):
    class Meta:
        model = License
        fields = ["id", "server", "name", "key", "quantity", "expires_at", "source", "updated_at"]
        read_only_fields = ["source", "updated_at"]


class SoftwareModuleSerializer(FullCleanSerializer):
    class Meta:
        model = SoftwareModule
        fields = ["id", "server", "name", "version", "source", "updated_at"]
        read_only_fields = ["source", "updated_at"]


class PartNumberSerializer(FullCleanSerializer):
    class Meta:
        model = PartNumber
        fields = ["id", "application", "edition", "primary_part", "failover_part", "platform"]
