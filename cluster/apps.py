from django.apps import AppConfig


class ClusterConfig(AppConfig):
    verbose_name = "Clusters"
    name = "cluster"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from alerts import panels
        from audit.models import Action
        from audit.record import register

        from . import signals  # noqa: F401  (connects the receivers)
        from .models import Cluster, Server
        from .views import event_story

        register(Server, secret_fields=["agent_token"])
        register(Cluster, toggles={"maintenance": (Action.MAINTENANCE_ON, Action.MAINTENANCE_OFF)})
        panels.register(event_story)  # an event's page tells the failover it belongs to
