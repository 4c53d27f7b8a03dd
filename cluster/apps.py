from django.apps import AppConfig


class ClusterConfig(AppConfig):
    verbose_name = "Clusters"
    name = "cluster"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
