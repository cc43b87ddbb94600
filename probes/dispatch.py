"""The dispatcher: claims due placements from the database and sends each run to its location.

A claim is a conditional UPDATE on `next_run_at`: of two dispatchers racing for one placement,
exactly one sees its row change and enqueues the run.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Callable

from django.db import connection
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


def dispatch_until(*, enqueue: Enqueue, seconds: float, tick: float = 0.05) -> int:
    """Send each run when its slot comes, for `seconds`: beat starts this every dispatch interval,
    and it polls every `tick` seconds (sooner when the next slot is sooner), so a run starts
    within a tick of its slot rather than up to a whole dispatch interval late. One indexed query
    per tick when nothing is due."""
    end = time.monotonic() + seconds
    sent = 0
    while True:
        sent += dispatch_due(enqueue=enqueue)
        left = end - time.monotonic()
        if left <= 0:
            return sent
        upcoming = (ProbeLocation.objects.filter(probe__enabled=True, probe__platform__enabled=True)
                    .order_by("next_run_at").values_list("next_run_at", flat=True).first())
        wait = (upcoming - timezone.now()).total_seconds() if upcoming else left
        time.sleep(min(max(wait, tick), left))


def dispatch_due(*, enqueue: Enqueue, now: datetime | None = None, limit: int = 500) -> int:
    """Claim and send the runs due by `now`, `limit` placements at a time until none is left.

    A placement more than an interval behind (the scheduler was down, or could not keep up) runs
    its latest slot, not its oldest: that one would expire before any worker could take it."""
    now = now or timezone.now()
    sent = 0
    while True:
        due = list(
            ProbeLocation.objects.filter(next_run_at__lte=now, probe__enabled=True, probe__platform__enabled=True)
            .select_related("probe", "location")
            .order_by("next_run_at")[:limit]
        )
        claims = []
        for placement in due:
            interval = timedelta(seconds=placement.probe.interval_s)
            slot = placement.next_run_at
            if now - slot >= interval:
                slot += interval * ((now - slot) // interval)
            claims.append((placement, slot, next_slot(slot, interval, now)))
        won = _claim([(p.id, p.next_run_at, following) for p, _, following in claims])
        for placement, slot, _ in claims:
            if placement.id in won:
                enqueue(placement, str(uuid.uuid4()), slot)
                sent += 1
        if len(due) < limit:
            return sent


def _claim(claims: list[tuple[int, datetime, datetime]]) -> set[int]:
    """Move each placement (id, seen next_run_at, following) on, if no one else did meanwhile; the
    ids this dispatcher won. On PostgreSQL one statement for the whole pass; elsewhere one
    conditional UPDATE per placement (SQLite serializes writers anyway)."""
    if not claims:
        return set()
    if connection.vendor == "postgresql":
        # Rows locked in id order, as evaluation locks placements: two statements that lock many
        # rows each in their own order could deadlock.
        rows = ", ".join(["(%s, %s::timestamptz, %s::timestamptz)"] * len(claims))
        table = ProbeLocation._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"""WITH v(id, seen, following) AS (VALUES {rows}),
                                    mine AS (SELECT p.id FROM {table} p JOIN v ON p.id = v.id AND p.next_run_at = v.seen
                                             ORDER BY p.id FOR UPDATE OF p)
                               UPDATE {table} AS p SET next_run_at = v.following FROM v, mine
                               WHERE p.id = v.id AND p.id = mine.id AND p.next_run_at = v.seen RETURNING p.id""",
                           [value for claim in claims for value in claim])
            return {row[0] for row in cursor.fetchall()}
    return {placement_id for placement_id, seen, following in claims
            if ProbeLocation.objects.filter(id=placement_id, next_run_at=seen).update(next_run_at=following) == 1}
