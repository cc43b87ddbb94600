"""Raw runs are deleted after the retention period, in batches; what was learnt from them stays."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from detection.models import Component, ComponentDay, ComponentHour, ComponentStatusChange
from probes.models import Location, Platform, Probe, Run, RunDay, RunHour
from probes.retention import runs_prune
from detection.rollups import rollup_add


def make_runs(probe: Probe, location: Location, ages_days: list[float]) -> list[Run]:
    now = timezone.now()
    runs = []
    for age in ages_days:
        started = now - timedelta(days=age)
        run = Run.objects.create(key=uuid.uuid4(), probe=probe, location=location, scheduled_for=started,
                                 started_at=started, finished_at=started, latency_ms=120, outcome="success")
        rollup_add(run)
        runs.append(run)
    return runs


def rollups() -> list:
    return [sorted(model.objects.values_list(*key, "runs", "failures")) for model, key in (
        (RunDay, ("probe_id", "location_id", "day")), (ComponentHour, ("component_id", "hour")),
        (ComponentDay, ("component_id", "day")))]


@pytest.mark.django_db
def test_runs_past_retention_go_in_batches_and_rollups_and_status_changes_stay(settings):
    settings.VIGIE_RUN_RETENTION_DAYS = 30
    platform = Platform.objects.create(name="P", slug="p", kind="sandbox", base_url="http://127.0.0.1:1")
    here, there = Location.objects.create(name="here"), Location.objects.create(name="there")
    post = Probe.objects.create(name="Post", slug="post", platform=platform, action="post")
    read = Probe.objects.create(name="Read", slug="read", platform=platform, action="read")
    component = Component.objects.create(name="Posting")
    component.probes.add(post)
    old = make_runs(post, here, [31, 32, 33, 40, 45, 60, 90]) + make_runs(read, there, [30.5, 31])
    # A probe moved off a location keeps its old runs there: they go too.
    old += make_runs(read, here, [35])
    recent = make_runs(post, here, [0, 1, 29.9]) + make_runs(read, there, [2])
    change = ComponentStatusChange.objects.create(component=component, old_status="operational",
                                                  new_status="major_outage", reason="posts fail", run=old[0],
                                                  changed_at=old[0].started_at)
    hours_before = sorted(RunHour.objects.values_list("probe_id", "location_id", "hour", "runs"))
    rollups_before = rollups()
    assert ComponentDay.objects.exists()

    assert runs_prune(batch=3) == len(old)
    assert set(Run.objects.values_list("id", flat=True)) == {r.id for r in recent}
    assert sorted(RunHour.objects.values_list("probe_id", "location_id", "hour", "runs")) == hours_before
    assert rollups() == rollups_before
    change.refresh_from_db()
    assert change.run_id is None and change.reason == "posts fail" and change.changed_at == old[0].started_at
    assert runs_prune(batch=3) == 0


@pytest.mark.django_db
def test_pruning_stops_at_its_time_budget_and_the_next_call_goes_on(settings):
    settings.VIGIE_RUN_RETENTION_DAYS = 1
    platform = Platform.objects.create(name="P", slug="p", kind="sandbox", base_url="http://127.0.0.1:1")
    here = Location.objects.create(name="here")
    probe = Probe.objects.create(name="Post", slug="post", platform=platform, action="post")
    make_runs(probe, here, [2, 3, 4])
    assert runs_prune(batch=1, max_seconds=0) == 0
    assert Run.objects.count() == 3
    assert runs_prune(batch=1) == 3
