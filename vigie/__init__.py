"""Vigie's Django project: settings, URLs, the WSGI entry, the Celery app (`celery -A vigie`), the
embedded broker and the Redis cache backend. Top of the flow: may import every other package."""
from django.db.backends.signals import connection_created

from vigie.celery import app as celery_app
from vigie.db import fast_timestamps

# PostgreSQL timestamps read at C speed (vigie/db.py), in every process: each imports this package
# with its settings (manage.py, celery -A vigie, the WSGI server).
connection_created.connect(fast_timestamps, dispatch_uid="vigie-fast-timestamps")

__all__ = ("celery_app",)
