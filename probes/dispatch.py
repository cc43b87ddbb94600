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

from django.conf import settings
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


def dispatch_due(*, enqueue: Enqueue, now: datetime | None = None, limit: int = 500,
                 late_after: float | None = None) -> int:
    """Claim the runs due by `now`, `limit` placements at a time until none is left, and hand each
    such group of claimed runs to `enqueue` at once.

    A placement behind by more than `late_after` seconds (default: a quarter of its interval, at
    least one dispatch interval; the scheduler was down, starting, or could not keep up) does not
    run a missed slot late: it waits for its next slot on its own grid, and the slots it missed are
    counted as skipped. Each location keeps its
    phase of the probe's interval (probes.models.staggered_start), so after any pause the
    locations' runs on one account stay apart instead of all firing at the same moment (two
    follows of one partner at once: a collision of Vigie's own making, seen at every start)."""
    now = now or timezone.now()
    least = timedelta(seconds=settings.DISPATCH_EVERY_SECONDS)
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
            late = timedelta(seconds=late_after) if late_after is not None else max(least, interval / 4)
            behind = (now - slot) // interval  # whole intervals behind: those slots are missed
            latest = slot + interval * behind
            if now - latest > late:
                # Even its latest slot is missed: the placement moves to its next slot, runs nothing now.
                skipped[placement.id] = behind + 1
                claims.append((placement, None, next_slot(slot, interval, now)))
            else:
                if behind:
                    skipped[placement.id] = behind
                claims.append((placement, latest, next_slot(slot, interval, now)))
        won = _claim([(p.id, p.next_run_at, following) for p, _, following in claims])
        runs = [Due(placement, str(uuid.uuid4()), slot) for placement, slot, _ in claims
                if placement.id in won and slot is not None]
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
