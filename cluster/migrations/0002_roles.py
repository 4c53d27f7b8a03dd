"""The three roles as groups (dms_admin/permissions.py): viewer, operator, admin. Their model
permissions give the Django admin the same split as the API."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ["cluster", "licensing", "alerts"]


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ours = Permission.objects.filter(content_type__app_label__in=APPS)
    viewer, _ = Group.objects.get_or_create(name="viewer")
    viewer.permissions.set(ours.filter(codename__startswith="view_"))
    operator, _ = Group.objects.get_or_create(name="operator")
    operator.permissions.set(ours.filter(codename__startswith="view_") | ours.filter(codename="change_event"))
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.set(ours)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "operator", "admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cluster", "0001_initial"),
        ("licensing", "0001_initial"),
        ("alerts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, remove_roles)]
