"""Every run that was due and not performed is counted, per probe, location, reason and hour; every
run performed has its lateness (start − slot) counted per location and hour. Both only add to
counters, so two workers counting at once lose nothing; and counting never stops the work it
describes: a database that is down makes it log instead."""
from __future__ import annotations

import bisect
import logging
from collections import Counter
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Iterable

from django.db import IntegrityError, InterfaceError, OperationalError, connection
from django.db.models import F, Sum
from django.utils import timezone

from probes.losses import DispatchLateness, DroppedRun, DropReason

log = logging.getLogger(__name__)

# Upper bounds of the lateness histogram, in seconds; past the last one: the overflow bucket.
LATENESS_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
OVERFLOW = len(LATENESS_BOUNDS_S)
# Counts older than this are deleted (prune-old-runs): the dashboard reads a day, Prometheus keeps
# its own history. A deletion lowers the exported counters, which Prometheus reads as a reset.
FACTS_KEPT = timedelta(days=90)


def hour_of(when: datetime) -> datetime:
    return when.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def lateness_bucket(seconds: float) -> int:
    """Index of the first bound at or above `seconds` (a run started early counts as on time)."""
    return bisect.bisect_left(LATENESS_BOUNDS_S, max(0.0, seconds))


def slots_by_hour(first: datetime, interval: timedelta, n: int) -> Iterable[tuple[datetime, int]]:
    """(hour, how many) of the `n` slots from `first`, every `interval`: without listing each slot
    (a scheduler down for a day jumps over thousands)."""
    done = 0
    while done < n:
        slot = first + interval * done
        next_hour = hour_of(slot) + timedelta(hours=1)
        in_hour = min(n - done, -(-(next_hour - slot) // interval))
        yield slot, in_hour
        done += in_hour


def runs_dropped_add(drops: Iterable[tuple]) -> None:
    """Count runs not performed: (probe id, location id, reason, slot[, how many]) each. Never
    raises for a database that is down (the worker's log says it instead)."""
    counts: Counter = Counter()
    for probe_id, location_id, reason, slot, *n in drops:
        counts[probe_id, location_id, DropReason(reason).value, hour_of(slot)] += n[0] if n else 1
    if not counts:
        return
    try:
        counters_add(DroppedRun, ("probe_id", "location_id", "reason", "hour"),
                     {key: {"count": n} for key, n in counts.items()})
    except (OperationalError, InterfaceError, IntegrityError) as exc:
        # IntegrityError: the probe or location was deleted meanwhile; nothing left to count for.
        if connection.in_atomic_block:
            raise
        log.warning("could not count %d dropped run(s) (%s)", sum(counts.values()), type(exc).__name__)


def lateness_add(runs: Iterable) -> None:
    """Count the lateness of runs just stored (objects with location_id, scheduled_for, started_at),
    in the caller's transaction."""
    counts: Counter = Counter()
    totals: Counter = Counter()
    for run in runs:
        seconds = (run.started_at - run.scheduled_for).total_seconds()
        key = (run.location_id, hour_of(run.scheduled_for), lateness_bucket(seconds))
        counts[key] += 1
        totals[key] += max(0, int(seconds * 1000))
    if not counts:
        return
    counters_add(DispatchLateness, ("location_id", "hour", "bucket"),
                 {key: {"runs": n, "total_ms": totals[key]} for key, n in counts.items()})


def counters_add(model, key_fields: tuple[str, ...], increments: dict[tuple, dict[str, int]]) -> None:
    """Add to counter rows, creating those missing: `increments` maps a key (the values of
    `key_fields`, a unique constraint of `model`) to {counter column: how much}. Keys go in sorted
    order, so two writers never lock the same rows in different orders. On PostgreSQL and SQLite,
    one INSERT … ON CONFLICT DO UPDATE for them all: a batch of runs, or a burst of dropped ones,
    costs one statement instead of one per key (the drops of an overloaded worker were a third of
    its CPU, one UPDATE each). Elsewhere, an INSERT of the missing rows and an UPDATE per key."""
    if not increments:
        return
    keys = sorted(increments)
    counters = sorted({name for values in increments.values() for name in values})
    if connection.vendor not in ("postgresql", "sqlite"):
        model.objects.bulk_create([model(**dict(zip(key_fields, key))) for key in keys], ignore_conflicts=True)
        for key in keys:
            model.objects.filter(**dict(zip(key_fields, key))).update(
                **{name: F(name) + increments[key].get(name, 0) for name in counters})
        return
    ops, meta = connection.ops, model._meta
    table = ops.quote_name(meta.db_table)
    key_columns = [ops.quote_name(meta.get_field(name).column) for name in key_fields]
    counter_columns = [ops.quote_name(meta.get_field(name).column) for name in counters]
    adapt = [_adapter(meta.get_field(name)) for name in key_fields]
    row = "(" + ", ".join(["%s"] * (len(key_fields) + len(counters))) + ")"
    params = []
    for key in keys:
        params += [convert(value) for convert, value in zip(adapt, key)]
        params += [increments[key].get(name, 0) for name in counters]
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in counter_columns)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({', '.join(key_columns + counter_columns)}) "
                       f"VALUES {', '.join([row] * len(keys))} "
                       f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}", params)


def _adapter(field):
    """How a key value is written in raw SQL, as the ORM writes it (SQLite keeps times as text)."""
    if field.get_internal_type() == "DateTimeField":
        return connection.ops.adapt_datetimefield_value
    return lambda value: value


def lateness_histogram(*, since: datetime | None = None, location_id: int | None = None) -> Counter:
    """Bucket index → runs, summed over hours from `since` (all when None)."""
    rows = DispatchLateness.objects.all()
    if since is not None:
        rows = rows.filter(hour__gte=hour_of(since))
    if location_id is not None:
        rows = rows.filter(location_id=location_id)
    return Counter({bucket: n for bucket, n in rows.values_list("bucket").annotate(n=Sum("runs")).order_by()})


def lateness_percentile(histogram: Counter, q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) of a lateness histogram, as its bucket's upper bound in seconds;
    None without runs, infinity when it falls in the overflow bucket."""
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= q * total:
            return LATENESS_BOUNDS_S[bucket] if bucket < OVERFLOW else float("inf")
    return float("inf")


def drops_recent(*, hours: int = 24, now: datetime | None = None) -> list[dict]:
    """Runs dropped in the last `hours`, per probe, location and reason, most first."""
    since = hour_of((now or timezone.now()) - timedelta(hours=hours - 1))
    return list(DroppedRun.objects.filter(hour__gte=since)
                .values("probe__slug", "location__name", "reason").annotate(n=Sum("count"))
                .order_by("-n", "probe__slug", "location__name", "reason"))


def facts_prune(*, now: datetime | None = None) -> int:
    """Delete dropped-run and lateness counts older than FACTS_KEPT; how many rows went."""
    cutoff = hour_of((now or timezone.now()) - FACTS_KEPT)
    return (DroppedRun.objects.filter(hour__lt=cutoff).delete()[0]
            + DispatchLateness.objects.filter(hour__lt=cutoff).delete()[0])
