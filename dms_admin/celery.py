"""The Celery app. Heartbeats and failovers have queues of their own so that replication or
notification work can never delay them, and replication jobs one so that they never delay
notifications (DESIGN §5, §4a Timing; the routes are in settings)."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dms_admin.settings")

app = Celery("dms_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**kwargs) -> None:
    """What a worker process made at start (Django, Celery, every module) lives as long as it does:
    frozen, it is left out of the collector's full passes, which had taken a tenth of a heartbeat
    worker's time going over it again and again."""
    gc.freeze()
