"""The dispatcher: claims due placements from the database and sends their runs to their locations.

A claim is a conditional UPDATE on `next_run_at`: of two dispatchers racing for one placement,
exactly one sees its row change and enqueues the run. The runs a pass claims are handed over
together, so that the runs due at one location at one moment travel as one message
(probes.tasks.run_batch).
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Callable, NamedTuple

from django.db import connection
from django.utils import timezone

from probes import drops
from probes.models import DropReason, Heartbeat, ProbeLocation


class Due(NamedTuple):
    """A run claimed for its slot: where, its idempotency key, and when it was due."""

    placement: ProbeLocation
    key: str
    slot: datetime


Enqueue = Callable[[list[Due]], None]


def next_slot(previous: datetime, interval: timedelta, now: datetime) -> datetime:
    """The next run time on the probe's grid after `now`: a late dispatcher skips missed slots
    instead of firing a burst to catch up."""
    slot = previous + interval
    if slot <= now:
        missed = (now - previous) // interval
        slot = previous + interval * (missed + 1)
    return slot


def dispatch_until(*, enqueue: Enqueue, seconds: float, tick: float = 0.1) -> int:
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
    """Claim the runs due by `now`, `limit` placements at a time until none is left, and hand each
    such group of claimed runs to `enqueue` at once.

    A placement more than an interval behind (the scheduler was down, or could not keep up) runs
    its latest slot, not its oldest: that one would expire before any worker could take it."""
    now = now or timezone.now()
    sent = 0
    while True:
        due = list(
            ProbeLocation.objects.filter(next_run_at__lte=now, probe__enabled=True, probe__platform__enabled=True)
            .select_related("probe", "location")
            # What sending a run reads (probes.tasks): a pass at 300 runs/s builds thousands of these.
            .only("id", "next_run_at", "probe__interval_s", "probe__timeout_s", "location__name")
            .order_by("next_run_at")[:limit]
        )
        claims, skipped = [], {}
        for placement in due:
            interval = timedelta(seconds=placement.probe.interval_s)
            slot = placement.next_run_at
            if now - slot >= interval:
                skipped[placement.id] = (now - slot) // interval
                slot += interval * skipped[placement.id]
            claims.append((placement, slot, next_slot(slot, interval, now)))
        won = _claim([(p.id, p.next_run_at, following) for p, _, following in claims])
        runs = [Due(placement, str(uuid.uuid4()), slot) for placement, slot, _ in claims if placement.id in won]
        # The slots jumped over are runs that will never happen: a fact (probes.drops), per slot.
        drops.runs_dropped_add(
            (placement.probe_id, placement.location_id, DropReason.SKIPPED, slot, n)
            for placement, _, _ in claims if placement.id in won and skipped.get(placement.id)
            for slot, n in drops.slots_by_hour(placement.next_run_at, timedelta(seconds=placement.probe.interval_s),
                                               skipped[placement.id]))
        if runs:
            enqueue(runs)
            sent += len(runs)
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


# The scheduler's sign of life, written by each dispatch pass and read by detection.heartbeat.
SCHEDULER = "scheduler"


def heartbeat_beat(name: str, *, detail: str = "", now: datetime | None = None) -> None:
    """Record a sign of life: one UPDATE, and an INSERT the first time only."""
    now = now or timezone.now()
    if not Heartbeat.objects.filter(name=name).update(beat_at=now, detail=detail[:200]):
        Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": now, "detail": detail[:200]})
