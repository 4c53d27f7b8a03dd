"""The Celery app. Heartbeats and failovers have queues of their own so that replication or
notification work can never delay them (DESIGN §5, §4a Timing)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dms_admin.settings")

app = Celery("dms_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
