"""The rollups as rollups_add keeps them (one INSERT … ON CONFLICT DO UPDATE per table and batch,
the JSON counts merged in the database) are exactly the counts of every run added up at once."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from detection.models import Component, ComponentDay, ComponentHour
from detection.rollups import COUNT_FIELDS, Counts, day_of, hour_of, page_zone, rollups_add
from detection.simulation import demo_layout
from probes.models import FailureClass, Outcome, ProbeLocation, Run, RunDay, RunHour

# Late evening in Paris, so a few hours cross a local midnight: hours and days split differently.
T0 = datetime(2026, 11, 20, 21, 30, tzinfo=dt_timezone.utc)
CLASSES = [FailureClass.SERVER_ERROR, FailureClass.TIMEOUT, FailureClass.READ_ONLY]

a_run = st.tuples(st.integers(min_value=0, max_value=9),  # placement index (modulo the placements)
                  st.integers(min_value=0, max_value=5 * 3600),  # seconds after T0
                  st.one_of(st.none(), st.sampled_from(CLASSES)),  # failure class, or success
                  st.integers(min_value=0, max_value=40_000))  # latency, ms


def _rows(model, key_fields):
    return {tuple(row[:len(key_fields)]): dict(zip(COUNT_FIELDS, row[len(key_fields):]))
            for row in model.objects.values_list(*key_fields, *COUNT_FIELDS)}


def _expected(runs, feeds, zone):
    """Straightforward: every run counted into its rows in memory, in one pass."""
    tables = {name: defaultdict(Counts) for name in ("run_hour", "run_day", "component_hour", "component_day")}
    for run in runs:
        hour, day = hour_of(run.started_at), day_of(run.started_at, zone)
        tables["run_hour"][run.probe_id, run.location_id, hour].add_run(run)
        tables["run_day"][run.probe_id, run.location_id, day].add_run(run)
        for component_id in feeds.get(run.probe_id, ()):
            tables["component_hour"][component_id, hour].add_run(run)
            tables["component_day"][component_id, day].add_run(run)
    return {name: {key: {"runs": c.runs, "failures": c.failures, "by_class": dict(c.by_class),
                         "latency": dict(c.latency)} for key, c in rows.items()}
            for name, rows in tables.items()}


@pytest.fixture
def layout(db):
    with override_settings(TIME_ZONE="Europe/Paris"):
        demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(days=1))
        yield list(ProbeLocation.objects.order_by("id"))


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(a_run, min_size=1, max_size=30), min_size=1, max_size=6))
def test_rollups_added_batch_by_batch_equal_the_runs_counted_at_once(layout, batches):
    for model in (RunHour, RunDay, ComponentHour, ComponentDay):
        model.objects.all().delete()
    feeds = defaultdict(list)
    for component_id, probe_id in Component.probes.through.objects.values_list("component_id", "probe_id"):
        feeds[probe_id].append(component_id)
    every = []
    for batch in batches:
        runs = []
        for index, seconds, failure_class, latency_ms in batch:
            placement = layout[index % len(layout)]
            started = T0 + timedelta(seconds=seconds)
            runs.append(Run(probe_id=placement.probe_id, location_id=placement.location_id, started_at=started,
                            finished_at=started + timedelta(milliseconds=latency_ms), scheduled_for=started,
                            latency_ms=latency_ms, outcome=Outcome.FAILURE if failure_class else Outcome.SUCCESS,
                            failure_class=failure_class or ""))
        with transaction.atomic():
            rollups_add(runs)  # the components looked up and locked here
        every += runs
    expected = _expected(every, feeds, page_zone())
    assert _rows(RunHour, ("probe_id", "location_id", "hour")) == expected["run_hour"]
    assert _rows(RunDay, ("probe_id", "location_id", "day")) == expected["run_day"]
    assert _rows(ComponentHour, ("component_id", "hour")) == expected["component_hour"]
    assert _rows(ComponentDay, ("component_id", "day")) == expected["component_day"]


def test_adding_runs_leaves_a_component_rows_status_seconds_as_they_were(layout):
    """The upsert writes the counters only: the seconds status_interval_add put on a row stay."""
    placement = layout[0]
    component_id = Component.objects.filter(probes__id=placement.probe_id).values_list("id", flat=True).first()
    ComponentHour.objects.create(component_id=component_id, hour=hour_of(T0), observed_s=1800.5, major_s=60.25,
                                 runs=2, failures=1, by_class={"timeout": 1}, latency={"27": 1})
    run = Run(probe_id=placement.probe_id, location_id=placement.location_id, started_at=T0, finished_at=T0,
              scheduled_for=T0, latency_ms=100, outcome=Outcome.FAILURE, failure_class=FailureClass.TIMEOUT)
    with transaction.atomic():
        rollups_add([run])
    row = ComponentHour.objects.get(component_id=component_id, hour=hour_of(T0))
    assert (row.observed_s, row.major_s, row.runs, row.failures) == (1800.5, 60.25, 3, 2)
    assert (row.by_class, row.latency) == ({"timeout": 2}, {"27": 1})
