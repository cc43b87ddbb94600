"""Celery tasks of the public site."""
from celery import shared_task
from django.core.cache import cache

# Set by statuspage.cache when it queues this task, so a burst of changes queues one rewrite.
PUBLISH_PENDING_KEY = "vigie:publish:pending"


@shared_task(time_limit=300, soft_time_limit=280, ignore_result=True)
def publish_static() -> None:
    """Rewrite the static copy in VIGIE_PUBLISH_DIR (queued by statuspage.cache on change)."""
    from django.conf import settings

    from statuspage.publish import site_publish

    cache.delete(PUBLISH_PENDING_KEY)  # changes from now on queue another rewrite
    site_publish(out=settings.VIGIE_PUBLISH_DIR)
