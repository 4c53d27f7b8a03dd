"""Celery tasks of the alerts app (queue `default`, see CELERY_TASK_ROUTES)."""

from celery import shared_task

from . import delivery


@shared_task(name=delivery.DELIVER_TASK, ignore_result=True)
def deliver(delivery_id: int) -> str | None:
    """Send one delivery if it is due and this worker wins the claim (see alerts/delivery.py)."""
    return delivery.deliver(delivery_id)


@shared_task(ignore_result=True)
def sweep_deliveries() -> dict[str, int]:
    """Periodic (beat): expire, release lost claims, re-queue deliveries whose task was lost."""
    return delivery.sweep()
