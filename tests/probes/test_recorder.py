"""Group commit of runs (probes.recorder, spool.runs_store, evaluation.runs_evaluate).

Runs stored together must leave the same placements, components and rollups as the same runs stored
one by one; a batch costs the same statements whatever its size; and whatever a batch cannot store
is stored by its own task, never lost.
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings, strategies as st

from probes import recorder, spool
from platforms.errors import ProbeError
from detection.models import Component
from probes.models import ProbeLocation, Run, RunHour
from probes.runner import run_payload
from detection.simulation import demo_layout
from tests.detection.test_detection_properties import check_invariants

T0 = datetime(2026, 3, 1, tzinfo=dt_timezone.utc)
CLASSES = ["", "", "server_error", "quota_exceeded", "timeout"]


def payload(placement: ProbeLocation, started_at: datetime, failure_class: str = "", latency_ms: int = 40) -> dict:
    return run_payload(key=str(uuid.uuid4()), placement=placement, scheduled_for=started_at, started_at=started_at,
                       latency_ms=latency_ms,
                       failure=ProbeError(failure_class, f"simulated {failure_class}") if failure_class else None,
                       steps=[], evidence={"failure_class": failure_class} if failure_class else {}, cleanup="none",
                       secrets=[]) | {"finished_at": (started_at + timedelta(milliseconds=latency_ms)).isoformat()}


def snapshot() -> dict:
    placements = {(p.probe.slug, p.location.name): (p.state, p.consecutive_failures, p.consecutive_successes,
                                                    p.flapping, p.recent, p.last_run_at, p.evaluated_until,
                                                    p.streak_started_at, p.recovery_started_at)
                  for p in ProbeLocation.objects.select_related("probe", "location")}
    components = {c.name: c.status for c in Component.objects.all()}
    hours = sorted((h.probe.slug, h.location.name, h.hour, h.runs, h.failures, tuple(sorted(h.by_class.items())),
                    tuple(sorted(h.latency.items()))) for h in RunHour.objects.select_related("probe", "location"))
    return {"placements": placements, "components": components, "hours": hours}


# Rounds of runs: in each round some placements run once (a batch never holds two runs of one
# placement: its runs are an interval apart, a batch a commit's time long).
rounds = st.lists(
    st.lists(st.tuples(st.integers(0, 11), st.sampled_from(CLASSES), st.sampled_from([40, 3000])),
             min_size=1, max_size=6, unique_by=lambda step: step[0]),
    min_size=1, max_size=30)


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(rounds=rounds, split=st.integers(1, 6))
def test_runs_stored_in_batches_leave_what_the_same_runs_stored_one_by_one_leave(rounds, split):
    outcomes = []
    for batched in (False, True):
        with transaction.atomic():
            demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(hours=1))
            placements = list(ProbeLocation.objects.select_related("probe", "location").order_by("id"))
            for number, steps in enumerate(rounds):
                at = T0 + timedelta(seconds=30 * number)
                payloads = sorted((payload(placements[i], at + timedelta(milliseconds=10 * k), failure, latency)
                                   for k, (i, failure, latency) in enumerate(steps)),
                                  key=lambda p: p["finished_at"])  # as runs reach the recorder
                if batched:  # the round's runs in batches of `split`
                    for first in range(0, len(payloads), split):
                        spool.runs_store(payloads[first:first + split])
                else:
                    for one in payloads:
                        spool.run_store(one)
            check_invariants()
            outcomes.append(snapshot())
            transaction.set_rollback(True)
    assert outcomes[0] == outcomes[1]


@pytest.mark.django_db
def test_a_batch_costs_the_same_statements_whatever_its_size():
    demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(hours=1))
    placements = list(ProbeLocation.objects.select_related("probe", "location").order_by("id"))
    spool.runs_store([payload(p, T0) for p in placements])  # the hour's rollup rows exist from now on
    counts = {}
    for size, round_ in ((2, 1), (12, 2)):
        with CaptureQueriesContext(connection) as queries:
            spool.runs_store([payload(p, T0 + timedelta(seconds=30 * round_)) for p in placements[:size]])
        counts[size] = len(queries)
    assert counts[2] == counts[12], counts
    assert Run.objects.count() == 12 + 2 + 12


@pytest.mark.django_db
def test_a_run_already_stored_is_returned_as_it_is_and_not_evaluated_again():
    demo_layout(locations=["atlanta"], created_at=T0 - timedelta(hours=1))
    placement = ProbeLocation.objects.select_related("probe", "location").first()
    first = payload(placement, T0, "server_error")
    stored = spool.run_store(first)
    again = spool.runs_store([first, payload(placement, T0 + timedelta(seconds=30), "server_error")])
    assert again[0].id == stored.id
    placement.refresh_from_db()
    assert placement.consecutive_failures == 2  # the first run counted once
    assert Run.objects.count() == 2


@pytest.fixture
def batching(monkeypatch):
    monkeypatch.setattr(recorder, "_enabled", True)
    monkeypatch.setattr(recorder, "_recorder", None)
    yield
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_runs_finishing_together_are_stored_in_few_batches_and_each_once(batching, monkeypatch):
    demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(hours=1))
    placements = list(ProbeLocation.objects.select_related("probe", "location").order_by("id"))
    sizes, held, submitted = [], threading.Event(), threading.Semaphore(0)
    real_store, real_submit = spool.runs_store, recorder.Recorder.submit

    def store(payloads):
        sizes.append(len(payloads))
        held.wait(30)  # the first batch commits slowly: the others queue meanwhile
        return real_store(payloads)

    def submit(self, item):
        submitted.release()
        return real_submit(self, item)

    monkeypatch.setattr(spool, "runs_store", store)
    monkeypatch.setattr(recorder.Recorder, "submit", submit)
    results, errors = {}, []

    def task(placement):
        try:
            results[placement.id] = recorder.store(payload(placement, T0, "timeout"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=task, args=(p,)) for p in placements]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert submitted.acquire(timeout=30)
    held.set()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(sizes) == len(placements) and len(sizes) < len(placements), sizes
    assert max(sizes) > 1
    assert sorted(run.location_id for run in results.values()) == sorted(p.location_id for p in placements)
    assert Run.objects.count() == len(placements)
    assert all(run.pk for run in results.values())
    assert set(ProbeLocation.objects.values_list("consecutive_failures", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_what_a_batch_cannot_store_each_task_stores_itself(batching, monkeypatch, caplog):
    demo_layout(locations=["atlanta"], created_at=T0 - timedelta(hours=1))
    placement = ProbeLocation.objects.select_related("probe", "location").first()

    real_store, calls = spool.runs_store, []

    def race(payloads):  # the batch meets a run another process stored meanwhile; the task's own store works
        calls.append(len(payloads))
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")
        return real_store(payloads)

    monkeypatch.setattr(spool, "runs_store", race)
    run = recorder.store(payload(placement, T0, "server_error"))
    assert run.pk and Run.objects.filter(key=run.key).exists()
    assert "storing each alone" in caplog.text and calls == [1, 1]
    placement.refresh_from_db()
    assert placement.consecutive_failures == 1


@pytest.mark.django_db(transaction=True)
def test_with_older_runs_in_the_spool_a_new_run_queues_behind_them(batching):
    demo_layout(locations=["atlanta"], created_at=T0 - timedelta(hours=1))
    placement = ProbeLocation.objects.select_related("probe", "location").first()
    older, newer = payload(placement, T0, "server_error"), payload(placement, T0 + timedelta(seconds=30))
    spool.spool_write(older)
    run = recorder.store(newer)
    assert not spool.spool_pending()
    stored = list(Run.objects.order_by("id").values_list("key", flat=True))
    assert [str(k) for k in stored] == [older["key"], newer["key"]]  # the spool first, in order
    assert run.key == uuid.UUID(newer["key"]) or str(run.key) == newer["key"]
    placement.refresh_from_db()
    assert (placement.consecutive_failures, placement.consecutive_successes) == (0, 1)
