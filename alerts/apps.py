from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit.record import register

        from .models import SECRET_FIELDS, NotificationRule

        register(NotificationRule, secret_fields=SECRET_FIELDS)
