from django.apps import AppConfig


class ClusterConfig(AppConfig):
    verbose_name = "Clusters"
    name = "cluster"
    default_auto_field = "django.db.models.BigAutoField"
