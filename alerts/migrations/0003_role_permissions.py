"""The roles of cluster/migrations/0002_roles.py for the notification models: every role views
them, admins also change them (the same split as the API)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MODELS = ["notificationrule", "delivery", "deliveryattempt", "snmpengineid"]


def grant(apps, schema_editor):
    app_config = apps.get_app_config("alerts")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ours = Permission.objects.filter(content_type__app_label="alerts", content_type__model__in=MODELS)
    for name in ("viewer", "operator"):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*ours.filter(codename__startswith="view_"))
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.add(*ours)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    ours = Permission.objects.filter(content_type__app_label="alerts", content_type__model__in=MODELS)
    for group in apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "operator", "admin"]):
        group.permissions.remove(*ours)


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_notifications"),
        ("cluster", "0002_roles"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
