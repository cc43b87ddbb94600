"""Celery tasks of notifications: thin, take ids, call one domain function."""
from __future__ import annotations

from celery import shared_task

from notifications import domain
from probes.deadletter import GuardedTask

# A delivery's hard limit stays under domain.CLAIM, so a live sender is never presumed dead.
DELIVER_LIMITS = {"time_limit": 60, "soft_time_limit": 45}


# A delivery that crashes its worker every time is set aside as a dead letter (probes/deadletter.py).
@shared_task(ignore_result=True, acks_late=True, base=GuardedTask, **DELIVER_LIMITS)
def deliver(delivery_id: int) -> str:
    return domain.delivery_send(delivery_id=delivery_id)


@shared_task(ignore_result=True, time_limit=30, soft_time_limit=25)
def deliver_due() -> int:
    """Retry due deliveries and those whose sender died; each is claimed again by `deliver`."""
    ids = domain.deliveries_due()
    for delivery_id in ids:
        deliver.apply_async(args=[delivery_id], expires=60)
    return len(ids)


@shared_task(ignore_result=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5,
             time_limit=60, soft_time_limit=45)
def send_confirmation(subscriber_id: int) -> bool:
    from notifications.transports import TransportError

    try:
        return domain.subscriber_send_confirmation(subscriber_id=subscriber_id)
    except TransportError as exc:
        raise OSError(exc.message) from None


@shared_task(ignore_result=True, time_limit=30, soft_time_limit=25)
def acknowledgements_check() -> int:
    """Tell on-call of incidents the platform leaves unacknowledged past the threshold, and of
    acknowledgements; each once (notifications.acknowledgements)."""
    from notifications.acknowledgements import acknowledgements_notify

    return acknowledgements_notify()
