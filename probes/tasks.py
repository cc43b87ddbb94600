"""Celery tasks: thin interfaces that take ids, re-read, and call one domain function."""
from __future__ import annotations

from datetime import datetime

from celery import shared_task

from probes import dispatch, evaluation, retention, runner
from probes.models import ProbeLocation


def _send_run(placement: ProbeLocation, run_key: str, scheduled_for: datetime) -> None:
    probe = placement.probe
    # The run must start within one interval or not at all; its hard limit covers action + cleanup.
    run_probe.apply_async(
        args=[placement.id, run_key, scheduled_for.isoformat()],
        queue=placement.location.queue,
        expires=float(probe.interval_s),
        soft_time_limit=probe.timeout_s * 2 + 10,
        time_limit=probe.timeout_s * 2 + 20,
    )


@shared_task(ignore_result=True, time_limit=60, soft_time_limit=50)
def dispatch_due() -> int:
    return dispatch.dispatch_due(enqueue=_send_run)


@shared_task(ignore_result=True, acks_late=True, time_limit=200, soft_time_limit=190)
def run_probe(placement_id: int, run_key: str, scheduled_for: str) -> str:
    run = runner.run_execute(placement_id=placement_id, run_key=run_key,
                             scheduled_for=datetime.fromisoformat(scheduled_for))
    return f"{run.outcome} {run.failure_class}".strip()


@shared_task(ignore_result=True, time_limit=300, soft_time_limit=280)
def cleanup_pending() -> int:
    return runner.cleanup_pending()


@shared_task(ignore_result=True, time_limit=60, soft_time_limit=50)
def watchdog() -> dict:
    return evaluation.watchdog()


@shared_task(ignore_result=True, time_limit=120, soft_time_limit=110)
def runs_prune() -> int:
    return retention.runs_prune()
