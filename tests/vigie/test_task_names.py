"""Celery task names outlive the modules that hold them: messages already queued and beat schedules
name tasks by the names they had before the layout move (issue 15)."""
from django.conf import settings

from vigie.celery import app

NAMES_BEFORE_THE_MOVE = {
    "probes.tasks.dispatch_due", "probes.tasks.run_probe", "probes.tasks.run_batch", "probes.tasks.cleanup_pending",
    "probes.tasks.watchdog", "probes.tasks.runs_prune", "statuspage.tasks.publish_static",
    "notifications.tasks.deliver", "notifications.tasks.deliver_due", "notifications.tasks.send_confirmation",
}


def test_every_task_keeps_its_name():
    app.loader.import_default_modules()
    assert NAMES_BEFORE_THE_MOVE <= set(app.tasks)


def test_every_scheduled_task_exists():
    app.loader.import_default_modules()
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= set(app.tasks)
