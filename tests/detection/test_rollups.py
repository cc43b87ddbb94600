"""Hourly rollups: every recorded run counted once, and percentiles read from the histograms."""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta, timezone as dt_timezone

from hypothesis import given, settings as hypothesis_settings, strategies as st

from probes.models import ProbeLocation, RunHour
from detection.rollups import BUCKETS_PER_DOUBLING, bucket_of, bucket_upper_ms, latency_series, percentile
from detection.simulation import demo_layout, record_run

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=dt_timezone.utc)


def test_a_latency_falls_in_the_bucket_whose_bounds_hold_it():
    for ms in (1, 2, 3, 17, 100, 999, 1000, 1001, 29_999, 120_000):
        b = bucket_of(ms)
        assert bucket_upper_ms(b - 1) < ms <= bucket_upper_ms(b) or (b == 0 and ms <= 1)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=60_000), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.95, 0.99]))
def test_a_percentile_from_the_histogram_is_within_one_bucket_of_the_true_one(latencies, q):
    histogram = Counter(bucket_of(ms) for ms in latencies)
    ordered = sorted(latencies)
    true = ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest-rank
    estimate = percentile(histogram, q)
    assert true <= estimate <= max(true * 2 ** (1 / BUCKETS_PER_DOUBLING), 1) + 1e-9


def test_each_recorded_run_is_counted_once_in_its_hour_with_failures_by_class(db):
    demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(days=1))
    atlanta, sacramento = ProbeLocation.objects.filter(probe__slug="sandbox-post").order_by("location__name")
    record_run(atlanta, T0 + timedelta(minutes=1), latency_ms=100)
    record_run(atlanta, T0 + timedelta(minutes=2), latency_ms=300)
    record_run(atlanta, T0 + timedelta(minutes=3), failure_class="server_error", latency_ms=5000)
    record_run(sacramento, T0 + timedelta(minutes=59, seconds=59), latency_ms=100)
    record_run(sacramento, T0 + timedelta(hours=1), latency_ms=100)
    rows = {(r.location.name, r.hour): r for r in RunHour.objects.select_related("location")}
    assert set(rows) == {("atlanta", T0), ("sacramento", T0), ("sacramento", T0 + timedelta(hours=1))}
    here = rows["atlanta", T0]
    assert (here.runs, here.failures, here.by_class) == (3, 1, {"server_error": 1})
    assert sum(here.latency.values()) == 2  # failed runs stay out of the response times


def test_the_series_merges_locations_per_hour_and_leaves_empty_hours_empty(db):
    demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(days=1))
    placements = list(ProbeLocation.objects.filter(probe__slug="sandbox-post"))
    for i in range(20):
        for placement in placements:
            record_run(placement, T0 + timedelta(minutes=i * 3), latency_ms=100 if i < 19 else 4000)
    series = latency_series([placements[0].probe_id], since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=2))
    assert [s["runs"] for s in series] == [0, 40, 0]
    assert series[0]["p50"] is None
    assert 100 <= series[1]["p50"] <= 100 * 2 ** 0.25
    assert 100 <= series[1]["p95"] <= 100 * 2 ** 0.25  # 2 of 40 slow runs: at the 95th rank, not past it
    assert series[1]["start"] == T0
