"""The Celery application: configuration comes from Django settings (CELERY_* names)."""
import logging
import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_ready, worker_shutdown
from kombu.transport import TRANSPORT_ALIASES

# filesystem:// (the embedded default) is kombu's transport with atomic writes; see vigie/broker.py.
TRANSPORT_ALIASES["filesystem"] = "vigie.broker:Transport"
# redis:// is kombu's Redis transport, with a worker that survives losing Redis while it holds a
# message acknowledged late; see vigie/broker_redis.py.
TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = "vigie.broker_redis:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigie.settings")

log = logging.getLogger(__name__)

app = Celery("vigie")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="vigie.celery.together", ignore_result=True)
def together(names: list[str]) -> None:
    """Beat's light periodic tasks due at one moment (vigie.beat), one after the other in this
    worker: one message for all of them. One that fails is logged and the others still run."""
    from celery.exceptions import SoftTimeLimitExceeded
    from django.conf import settings

    for name in [name for name in settings.VIGIE_BEAT_TOGETHER if name in names]:  # none other
        try:
            app.tasks[name]()
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            log.exception("periodic task %s failed", name)


@worker_ready.connect
def _watchdog_start(**_) -> None:
    # Every worker watches the scheduler's heartbeat, so beat dying is noticed without beat.
    from detection.heartbeat import loop_start

    loop_start()


@worker_shutdown.connect
def _watchdog_stop(**_) -> None:
    from detection.heartbeat import loop_stop

    loop_stop()


# --- Faults (issue 20): the spool drains when a worker starts, and on a timer -----------------------
@worker_ready.connect
def _spool_drain_start(**_) -> None:
    from probes.spool import drain_loop_start

    drain_loop_start()


@worker_shutdown.connect
def _spool_drain_stop(**_) -> None:
    from probes.spool import drain_loop_stop

    drain_loop_stop()
# --- end of faults ---------------------------------------------------------------------------------


@worker_init.connect
def _batching_start(**_) -> None:
    # A worker performs the runs of a message side by side (probes.inflight) and stores the runs
    # that finish together in one transaction (probes.recorder).
    from probes import inflight, recorder

    inflight.enable()
    recorder.enable()


@task_prerun.connect
@task_postrun.connect
def _connections_tidy(task=None, **_) -> None:
    # Django's rule for a request, per task: a connection past CONN_MAX_AGE or left broken by an
    # error is closed, a good one is kept. (Celery would otherwise close it after every task — a new
    # connection per run — except every CELERY_DB_REUSE_MAX tasks, see settings.)
    from django.db import close_old_connections

    if not getattr(getattr(task, "request", None), "is_eager", False):  # run in the caller's thread
        close_old_connections()
