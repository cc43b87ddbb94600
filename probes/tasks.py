"""Celery tasks: thin interfaces that take ids, re-read, and call one domain function."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task, signals
from django.conf import settings

from probes import dispatch, evaluation, heartbeat, retention, runner
from probes.models import ProbeLocation

log = logging.getLogger(__name__)


def _send_run(placement: ProbeLocation, run_key: str, scheduled_for: datetime) -> None:
    probe = placement.probe
    # The run must start within one interval of its slot or not at all; its hard limit covers
    # action + cleanup + the wait for an unreachable database (the run is on disk by then: probes.spool).
    run_probe.apply_async(
        args=[placement.id, run_key, scheduled_for.isoformat()],
        queue=placement.location.queue,
        expires=scheduled_for + timedelta(seconds=probe.interval_s),
        soft_time_limit=probe.timeout_s * 2 + 10 + settings.VIGIE_DB_RETRY_SECONDS,
        time_limit=probe.timeout_s * 2 + 20 + settings.VIGIE_DB_RETRY_SECONDS,
    )


# Acknowledged on receipt: a pass lost with its worker is replaced by the next a second later, and
# a long pass still unacknowledged when the broker connection drops makes the worker crash on
# restoring it (Celery 5.7: "Unrecoverable error: ... no attribute 'hostname'").
@shared_task(ignore_result=True, acks_late=False, time_limit=60, soft_time_limit=50)
def dispatch_due() -> int:
    # Sends each run at its slot until just before beat starts the next of these.
    sent = dispatch.dispatch_until(enqueue=_send_run, seconds=max(0.0, settings.DISPATCH_EVERY_SECONDS - 0.25))
    # The scheduler's sign of life, read by the watchdog loop in every worker (probes.heartbeat).
    heartbeat.heartbeat_beat(heartbeat.SCHEDULER, detail=f"{sent} run(s) sent")
    return sent


@shared_task(ignore_result=True, acks_late=True, time_limit=200 + settings.VIGIE_DB_RETRY_SECONDS,
             soft_time_limit=190 + settings.VIGIE_DB_RETRY_SECONDS)
def run_probe(placement_id: int, run_key: str, scheduled_for: str) -> str:
    run = runner.run_execute(placement_id=placement_id, run_key=run_key,
                             scheduled_for=datetime.fromisoformat(scheduled_for))
    return f"{run.outcome} {run.failure_class}".strip()


@signals.task_revoked.connect
def run_expired(sender=None, request=None, expired: bool = False, **_) -> None:
    """A run that reaches a worker after its slot (its worker died holding it, and the broker gave
    it back after the visibility timeout) is dropped, not run late: say so, it is not silent.
    What the dead worker's attempt created is in the artifact ledger, cleaned by cleanup_pending."""
    if expired and getattr(sender, "name", None) == run_probe.name:
        args = list(getattr(request, "args", None) or []) + [None, None, None]
        log.warning("run %s of placement %s (scheduled for %s) expired before a worker could run it; "
                    "not run. Its worker may have died: anything it created is cleaned by cleanup_pending",
                    args[1], args[0], args[2])


@shared_task(ignore_result=True, time_limit=300, soft_time_limit=280)
def cleanup_pending() -> int:
    return runner.cleanup_pending()


@shared_task(ignore_result=True, time_limit=60, soft_time_limit=50)
def watchdog() -> dict:
    return evaluation.watchdog()


@shared_task(ignore_result=True, time_limit=120, soft_time_limit=110)
def runs_prune() -> int:
    return retention.runs_prune()
