"""Measure: what is exercised and what happened (platforms, probes, runs); see probes/__init__.py."""
from django.apps import AppConfig


class ProbesConfig(AppConfig):
    name = "probes"
    default_auto_field = "django.db.models.BigAutoField"
