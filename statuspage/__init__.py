"""Vigie's Django project: settings, the Celery app, and everything web-facing."""
from statuspage.celery import app as celery_app

__all__ = ("celery_app",)
