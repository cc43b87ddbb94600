"""Invariants of detection under random run sequences (hypothesis), and under real concurrency."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings, strategies as st

from detection.evaluation import run_evaluate
from detection.models import Component, ComponentStatus, Incident, IncidentStatus, IncidentUpdate
from probes.models import ProbeLocation
from detection.simulation import demo_layout, record_run

T0 = datetime(2026, 3, 1, tzinfo=dt_timezone.utc)
CLASSES = ["", "", "server_error", "quota_exceeded", "timeout", "connect"]

steps = st.lists(
    st.tuples(st.integers(0, 11),  # which placement (6 probes × 2 locations)
              st.sampled_from(CLASSES),  # outcome
              st.sampled_from([40, 40, 3000]),  # latency: fast or over the 2,000 ms threshold
              st.integers(1, 40)),  # seconds since the previous run
    min_size=1, max_size=120)


def check_invariants() -> None:
    incidents = list(Incident.objects.all())
    for incident in incidents:
        assert incident.started_at <= incident.detected_at + timedelta(seconds=1)
        if incident.resolved_at:
            assert incident.duration.total_seconds() >= 0
        assert IncidentUpdate.objects.filter(incident=incident, status=IncidentStatus.RESOLVED).count() <= 1
        assert (incident.resolved_at is None) == (incident.status != IncidentStatus.RESOLVED)
    assert Incident.objects.filter(automatic=True, resolved_at__isnull=True).count() <= 1
    for component in Component.objects.all():
        spans = sorted((i.started_at, i.resolved_at or datetime.max.replace(tzinfo=dt_timezone.utc))
                       for i in component.incidents.all())
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end <= start, f"overlapping incidents on {component}"
        history = list(component.status_changes.order_by("changed_at", "id"))
        previous, at = ComponentStatus.UNKNOWN, None  # not measured until its first run
        for change in history:
            assert change.old_status == previous, "a gap or overlap in the component's history"
            assert at is None or change.changed_at >= at
            previous, at = change.new_status, change.changed_at
        assert previous == component.status


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(sequence=steps)
def test_random_run_sequences_keep_incidents_and_history_consistent(sequence):
    with transaction.atomic():
        demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(hours=1))
        placements = list(ProbeLocation.objects.select_related("probe", "location").order_by("id"))
        now = T0
        for index, failure_class, latency, gap in sequence:
            now += timedelta(seconds=gap)
            record_run(placements[index], now, failure_class=failure_class, latency_ms=latency)
        check_invariants()
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_of_one_outage_open_exactly_one_incident():
    demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(hours=1))
    writes = list(ProbeLocation.objects.filter(probe__action__in=["post", "repost", "follow", "dm"])
                  .select_related("probe", "location"))
    barrier = threading.Barrier(len(writes), timeout=30)
    errors: list[BaseException] = []

    def worker(placement: ProbeLocation) -> None:
        try:
            for i in range(7):
                barrier.wait()  # every placement records its i-th run at the same moment
                run = record_run(placement, T0 + timedelta(seconds=30 * i),
                                 failure_class="" if i == 0 else "quota_exceeded")
                run_evaluate(run)  # a second evaluation of the same run (a retried task) changes nothing
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(p,)) for p in writes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    incident = Incident.objects.get()
    assert incident.components.count() == 4
    assert incident.updates.filter(status=IncidentStatus.INVESTIGATING).count() >= 1
    assert incident.started_at == T0 + timedelta(seconds=30)
    check_invariants()
