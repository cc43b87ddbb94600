"""Hourly rollups of runs (counts, failures, latency histograms) and the percentiles read from them.

Latencies go into logarithmic buckets, four per doubling, so histograms of any hours, locations
or probes add up exactly and a percentile read from them is within 19% (one bucket) of the true
value — plenty for a response-time chart, and nothing grows with the number of runs.
"""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.db.models import F

from probes.models import Outcome, Run, RunHour

BUCKETS_PER_DOUBLING = 4


def bucket_of(latency_ms: int) -> int:
    """Bucket index of a latency: bucket b holds (2^((b-1)/4), 2^(b/4)] ms; bucket 0 holds ≤ 1 ms."""
    if latency_ms <= 1:
        return 0
    return math.ceil(math.log2(latency_ms) * BUCKETS_PER_DOUBLING - 1e-9)


def bucket_upper_ms(bucket: int) -> float:
    return 2 ** (bucket / BUCKETS_PER_DOUBLING)


def hour_of(when: datetime) -> datetime:
    return when.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def rollup_add(run: Run) -> None:
    """Count one run in its hour. Called once per run, inside the run's evaluation transaction with
    its placement locked, so two runs of the same place never race on the row's JSON."""
    hour = hour_of(run.started_at)
    failed = run.outcome == Outcome.FAILURE
    row = RunHour.objects.select_for_update().filter(probe_id=run.probe_id, location_id=run.location_id,
                                                     hour=hour).first()
    if row is None:
        try:
            with transaction.atomic():
                row = RunHour.objects.create(probe_id=run.probe_id, location_id=run.location_id, hour=hour)
        except IntegrityError:
            row = RunHour.objects.select_for_update().get(probe_id=run.probe_id, location_id=run.location_id,
                                                          hour=hour)
    if failed:
        by_class = dict(row.by_class)
        by_class[run.failure_class] = by_class.get(run.failure_class, 0) + 1
        RunHour.objects.filter(id=row.id).update(runs=F("runs") + 1, failures=F("failures") + 1, by_class=by_class)
    else:
        latency = dict(row.latency)
        key = str(bucket_of(run.latency_ms))
        latency[key] = latency.get(key, 0) + 1
        RunHour.objects.filter(id=row.id).update(runs=F("runs") + 1, latency=latency)


def percentile(histogram: Counter, q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) of a bucket histogram, as its bucket's upper bound in ms."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_upper_ms(bucket)
    return bucket_upper_ms(max(histogram))


def latency_series(probe_ids: list[int], *, since: datetime, until: datetime, step_hours: int = 1) -> list[dict]:
    """p50/p95 of successful runs per step from `since` to `until`, merged over the probes and their
    locations; a step with no successful run has None. One query, bounded by the window."""
    start = hour_of(since)
    steps = max(1, math.ceil((until - start).total_seconds() / (3600 * step_hours)))
    merged = [Counter() for _ in range(steps)]
    runs = [0] * steps
    failures = [0] * steps
    for hour, latency, n, failed in (RunHour.objects.filter(probe_id__in=probe_ids, hour__gte=start, hour__lt=until)
                                     .values_list("hour", "latency", "runs", "failures")):
        index = int((hour - start).total_seconds() // (3600 * step_hours))
        if 0 <= index < steps:
            merged[index].update({int(k): v for k, v in latency.items()})
            runs[index] += n
            failures[index] += failed
    return [{"start": start + timedelta(hours=i * step_hours), "p50": percentile(h, 0.5), "p95": percentile(h, 0.95),
             "runs": runs[i], "failures": failures[i]} for i, h in enumerate(merged)]
