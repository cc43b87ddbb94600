"""The dispatcher: claims due placements from the database and sends each run to its location.

A claim is a conditional UPDATE on `next_run_at`: of two dispatchers racing for one placement,
exactly one sees its row change and enqueues the run.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Callable

from django.utils import timezone

from probes.models import ProbeLocation

Enqueue = Callable[[ProbeLocation, str, datetime], None]


def next_slot(previous: datetime, interval: timedelta, now: datetime) -> datetime:
    """The next run time on the probe's grid after `now`: a late dispatcher skips missed slots
    instead of firing a burst to catch up."""
    slot = previous + interval
    if slot <= now:
        missed = (now - previous) // interval
        slot = previous + interval * (missed + 1)
    return slot


def dispatch_due(*, enqueue: Enqueue, now: datetime | None = None, limit: int = 500) -> int:
    now = now or timezone.now()
    due = list(
        ProbeLocation.objects.filter(next_run_at__lte=now, probe__enabled=True, probe__platform__enabled=True)
        .select_related("probe", "location")
        .order_by("next_run_at")[:limit]
    )
    sent = 0
    for placement in due:
        scheduled_for = placement.next_run_at
        following = next_slot(scheduled_for, timedelta(seconds=placement.probe.interval_s), now)
        claimed = ProbeLocation.objects.filter(id=placement.id, next_run_at=scheduled_for).update(next_run_at=following)
        if claimed == 1:
            enqueue(placement, str(uuid.uuid4()), scheduled_for)
            sent += 1
    return sent
