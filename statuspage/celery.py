"""The Celery application: configuration comes from Django settings (CELERY_* names)."""
import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from kombu.transport import TRANSPORT_ALIASES

# filesystem:// (the embedded default) is kombu's transport with atomic writes; see statuspage/broker.py.
TRANSPORT_ALIASES["filesystem"] = "statuspage.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")

app = Celery("vigie")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _watchdog_start(**_) -> None:
    # Every worker watches the scheduler's heartbeat, so beat dying is noticed without beat.
    from probes.heartbeat import loop_start

    loop_start()


@worker_shutdown.connect
def _watchdog_stop(**_) -> None:
    from probes.heartbeat import loop_stop

    loop_stop()
