"""Vigie's Django project: settings, URLs, the WSGI entry, the Celery app (`celery -A vigie`), the
embedded broker and the Redis cache backend. Top of the flow: may import every other package."""
from vigie.celery import app as celery_app

__all__ = ("celery_app",)
