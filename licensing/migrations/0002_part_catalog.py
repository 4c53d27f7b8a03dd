"""The three primary ↔ failover part pairs of the product sheet (DESIGN §2)."""

from django.db import migrations

CATALOG = [
    ("dmm", "Digital Media Manager", "DMM-SVR-C210-K9", "DMM-FA-C210-K9"),
    ("sns", "Show and Share – Enterprise", "SNS-SVR-C210EN-K9", "SNS-FA-C210EN-K9"),
    ("sns", "Show and Share – Workgroup", "SNS-SVR-C200WG-K9", "SNS-FA-C200WG-K9"),
]


def load(apps, schema_editor):
    PartNumber = apps.get_model("licensing", "PartNumber")
    for application, edition, primary, failover in CATALOG:
        PartNumber.objects.update_or_create(
            primary_part=primary,
            defaults={"application": application, "edition": edition, "failover_part": failover, "platform": "ucs"},
        )


def unload(apps, schema_editor):
    apps.get_model("licensing", "PartNumber").objects.filter(primary_part__in=[row[2] for row in CATALOG]).delete()


class Migration(migrations.Migration):
    dependencies = [("licensing", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
