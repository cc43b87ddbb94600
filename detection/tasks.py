"""Celery tasks of detection. Names are kept from when they lived in probes.tasks, so queued
messages and beat schedules (vigie.settings) go on working."""
from celery import shared_task

from detection import evaluation


@shared_task(name="probes.tasks.watchdog", ignore_result=True, time_limit=60, soft_time_limit=50)
def watchdog() -> dict:
    return evaluation.watchdog()
