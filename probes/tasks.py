"""Celery tasks: thin interfaces that take ids, re-read, and call one domain function."""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from celery import shared_task, signals
from django.conf import settings
from django.dispatch import Signal

from probes import dispatch, drops, retention, runner, spool, sweep
from probes.deadletter import ON_DEAD, GuardedTask, deliveries_prune
from probes.losses import DropReason

log = logging.getLogger(__name__)

# Sent after each dispatch pass; the status page refreshes its static copy's "last checked" on it
# (statuspage/apps.py), so probes need not know the page.
dispatch_pass_done = Signal()


def _send_runs(runs: list[dispatch.Due]) -> None:
    """Send the runs a dispatch pass claimed: one message per location (up to VIGIE_RUNS_IN_FLIGHT
    runs each), whose worker performs them side by side. A message costs the dispatcher, the
    broker and the worker about as much as a run costs the worker: one per run was most of the
    engine's CPU."""
    by_queue: dict[str, list[dispatch.Due]] = defaultdict(list)
    for run in runs:
        by_queue[run.placement.location.queue].append(run)
    size = settings.VIGIE_RUNS_IN_FLIGHT
    for queue, queued in by_queue.items():
        for start in range(0, len(queued), size):
            batch = queued[start:start + size]
            # Each run must start within one interval of its slot or not at all: the message
            # expires with the last of them, the worker drops each one past its own. Its hard
            # limit covers action + cleanup + the wait for an unreachable database (the runs are on
            # disk by then: probes.spool), the runs side by side.
            longest = max(run.placement.probe.timeout_s for run in batch)
            run_batch.apply_async(
                args=[[[run.placement.id, run.key, run.slot.isoformat()] for run in batch]],
                queue=queue,
                expires=max(run.slot + timedelta(seconds=run.placement.probe.interval_s) for run in batch),
                soft_time_limit=longest * 2 + 10 + settings.VIGIE_DB_RETRY_SECONDS,
                time_limit=longest * 2 + 20 + settings.VIGIE_DB_RETRY_SECONDS,
            )


# Acknowledged on receipt: a pass lost with its worker is replaced by the next a second later, and
# a long pass still unacknowledged when the broker connection drops makes the worker crash on
# restoring it (Celery 5.7: "Unrecoverable error: ... no attribute 'hostname'").
@shared_task(ignore_result=True, acks_late=False, time_limit=60, soft_time_limit=50)
def dispatch_due() -> int:
    # Sends each run at its slot until just before beat starts the next of these.
    sent = dispatch.dispatch_until(enqueue=_send_runs, seconds=max(0.0, settings.DISPATCH_EVERY_SECONDS - 0.25))
    # The scheduler's sign of life, read by the watchdog loop in every worker (detection.heartbeat).
    dispatch.heartbeat_beat(dispatch.SCHEDULER, detail=f"{sent} run(s) sent")
    dispatch_pass_done.send(sender=dispatch_due)  # the static copy's "last checked" follows the live page's
    return sent


@shared_task(ignore_result=True, acks_late=True, base=GuardedTask, time_limit=200 + settings.VIGIE_DB_RETRY_SECONDS,
             soft_time_limit=190 + settings.VIGIE_DB_RETRY_SECONDS)
def run_probe(placement_id: int, run_key: str, scheduled_for: str) -> str:
    """One run alone: what the dispatcher sent before run_batch (messages queued across an upgrade)."""
    run = runner.run_execute(placement_id=placement_id, run_key=run_key,
                             scheduled_for=datetime.fromisoformat(scheduled_for))
    return f"{run.outcome} {run.failure_class}".strip()


@shared_task(ignore_result=True, acks_late=True, base=GuardedTask, time_limit=200 + settings.VIGIE_DB_RETRY_SECONDS,
             soft_time_limit=190 + settings.VIGIE_DB_RETRY_SECONDS)
def run_batch(runs: list[list]) -> str:
    """The runs of one location due at one moment: [[placement id, run key, slot], …]."""
    recorded = runner.runs_execute([(placement_id, key, datetime.fromisoformat(slot)) for placement_id, key, slot in runs])
    return f"{len(recorded)} of {len(runs)} run(s) recorded"


@signals.task_revoked.connect
def run_expired(sender=None, request=None, expired: bool = False, **_) -> None:
    """A run that reaches a worker after its slot (its worker died holding it, and the broker gave
    it back after the visibility timeout) is dropped, not run late: say so, it is not silent.
    What the dead worker's attempt created is in the artifact ledger, cleaned by cleanup_pending."""
    name = getattr(sender, "name", None)
    if not expired or name not in (run_probe.name, run_batch.name):
        return
    args = list(getattr(request, "args", None) or [])
    runs = (args[0] if args and isinstance(args[0], list) else []) if name == run_batch.name else [args]
    runs = [(list(run) + [None, None, None])[:3] for run in runs]
    for placement_id, key, slot in runs:
        log.warning("run %s of placement %s (scheduled for %s) expired before a worker could run it; "
                    "not run. Its worker may have died: anything it created is cleaned by cleanup_pending",
                    key, placement_id, slot)
    runs_dropped(runs, DropReason.MESSAGE_EXPIRED)


def runs_dropped(runs: list[list], reason: str) -> None:
    """Count runs of a message not performed ([placement id, run key, slot] each): a fact, per probe."""
    from probes.models import ProbeLocation

    try:
        placements = {placement_id: (probe_id, location_id) for placement_id, probe_id, location_id in
                      ProbeLocation.objects.filter(id__in=[r[0] for r in runs if isinstance(r[0], int)])
                      .values_list("id", "probe_id", "location_id")}
    except spool.DB_DOWN:
        spool.connection_reset()
        log.warning("could not count %d dropped run(s): database unreachable", len(runs))
        return
    drops.runs_dropped_add((*placements[p], reason, datetime.fromisoformat(slot))
                           for p, _, slot in runs if p in placements and slot)


# What a dead letter held, counted as dropped runs (probes.deadletter.ON_DEAD).
ON_DEAD[run_batch.name] = lambda args, kwargs: runs_dropped(list(args[0]) if args else [], DropReason.DEAD_LETTER)
ON_DEAD[run_probe.name] = lambda args, kwargs: runs_dropped([list(args)], DropReason.DEAD_LETTER)


@shared_task(ignore_result=True, time_limit=300, soft_time_limit=280)
def cleanup_pending() -> int:
    return runner.cleanup_pending()


@shared_task(ignore_result=True, time_limit=300, soft_time_limit=280)
def leftovers_sweep() -> dict:
    """Find Vigie's own leftovers on each platform and remove the ones old enough at once."""
    found = sweep.leftovers_sweep()
    found["cleaned"] = runner.cleanup_pending()
    return found


@shared_task(ignore_result=True, time_limit=120, soft_time_limit=110)
def runs_prune() -> int:
    deliveries_prune()
    drops.facts_prune()
    return retention.runs_prune()
