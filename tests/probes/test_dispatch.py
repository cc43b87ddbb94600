"""The dispatcher claims each due placement once, even with two dispatchers racing."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection
from django.utils import timezone

from probes import dispatch
from probes.models import Location, Platform, Probe, ProbeLocation

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=dt_timezone.utc)


def test_next_slot_follows_the_grid():
    assert dispatch.next_slot(T0, timedelta(seconds=30), T0 + timedelta(seconds=1)) == T0 + timedelta(seconds=30)


def test_a_late_dispatcher_skips_missed_slots_instead_of_bursting():
    late = T0 + timedelta(seconds=95)
    assert dispatch.next_slot(T0, timedelta(seconds=30), late) == T0 + timedelta(seconds=120)


def _placements(count: int) -> list[ProbeLocation]:
    platform = Platform.objects.create(name="P", slug="p", kind="sandbox", base_url="http://127.0.0.1:9")
    locations = [Location.objects.create(name=f"loc{i}") for i in range(4)]
    out = []
    for i in range(count // 4):
        probe = Probe.objects.create(name=f"probe {i}", slug=f"probe-{i}", platform=platform, action="read",
                                     interval_s=30)
        for location in locations:
            out.append(ProbeLocation.objects.create(probe=probe, location=location,
                                                    next_run_at=timezone.now() - timedelta(seconds=5)))
    return out


@pytest.mark.django_db
def test_a_dispatch_sends_each_due_placement_and_moves_it_one_interval_on():
    placements = _placements(8)
    sent = []
    assert dispatch.dispatch_due(enqueue=lambda runs: sent.extend((p.id, key, at) for p, key, at in runs)) == 8
    assert sorted(p for p, _, _ in sent) == sorted(p.id for p in placements)
    assert len({key for _, key, _ in sent}) == 8  # every run has its own idempotency key
    assert dispatch.dispatch_due(enqueue=sent.extend) == 0  # nothing due any more
    for placement in placements:
        placement.refresh_from_db()
        assert placement.next_run_at > timezone.now()


@pytest.mark.django_db
def test_a_disabled_probe_is_not_dispatched():
    _placements(4)
    Probe.objects.update(enabled=False)
    assert dispatch.dispatch_due(enqueue=lambda runs: None) == 0


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_claim_each_placement_exactly_once(monkeypatch):
    placements = _placements(40)
    # Both dispatchers read the same due list before either claims anything: the worst race.
    barrier = threading.Barrier(2, timeout=10)
    waited = threading.local()
    real_next_slot = dispatch.next_slot

    def next_slot_after_both_have_read(*args):
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return real_next_slot(*args)

    monkeypatch.setattr(dispatch, "next_slot", next_slot_after_both_have_read)
    sent: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def enqueue(runs):
        with lock:
            sent.extend(placement.id for placement, _, _ in runs)

    def dispatcher():
        try:
            dispatch.dispatch_due(enqueue=enqueue)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(sent) == sorted(p.id for p in placements)  # all sent, none twice


@pytest.mark.django_db
def test_a_dispatch_pass_sends_each_run_when_its_slot_comes_not_at_the_next_pass():
    placements = _placements(8)
    now = timezone.now()
    slots = {p.id: now + timedelta(seconds=0.2 + 0.1 * i) for i, p in enumerate(placements)}
    for placement in placements:
        ProbeLocation.objects.filter(id=placement.id).update(next_run_at=slots[placement.id])
    sent = {}
    assert dispatch.dispatch_until(enqueue=lambda runs: [sent.setdefault(p.id, (at, timezone.now())) for p, _, at in runs],
                                   seconds=1.2, tick=0.02) == 8
    for placement_id, (slot, at) in sent.items():
        assert slot == slots[placement_id]
        assert slot <= at < slot + timedelta(seconds=0.15), (slot, at)  # within a tick or so, not a pass late


@pytest.mark.django_db
def test_a_placement_far_behind_runs_its_latest_slot_and_moves_past_now():
    [placement, *_] = _placements(4)
    now = timezone.now()
    ProbeLocation.objects.filter(id=placement.id).update(next_run_at=now - timedelta(seconds=95))  # interval 30 s
    sent = {}  # -5 is within a quarter interval (7.5 s) of now: it runs
    dispatch.dispatch_due(enqueue=lambda runs: [sent.setdefault(p.id, at) for p, _, at in runs], now=now)
    assert sent[placement.id] == now - timedelta(seconds=5)  # -95, -65, -35 skipped; -5 still runs in time
    placement.refresh_from_db()
    assert placement.next_run_at == now + timedelta(seconds=25)


@pytest.mark.django_db
def test_a_slot_missed_by_more_than_a_quarter_interval_waits_for_the_next_one_on_its_own_grid():
    """After a pause (a start, a scheduler down), each location resumes on its own phase: two
    locations 15 s apart on a 30 s grid, both behind, must not run at the same moment (two runs on
    one account at once collide: Vigie's own doing)."""
    first, second, *_ = _placements(4)
    now = timezone.now()
    ProbeLocation.objects.filter(id=first.id).update(next_run_at=now - timedelta(seconds=40))
    ProbeLocation.objects.filter(id=second.id).update(next_run_at=now - timedelta(seconds=25))
    sent = {}
    dispatch.dispatch_due(enqueue=lambda runs: [sent.setdefault(p.id, at) for p, _, at in runs], now=now)
    assert first.id not in sent and second.id not in sent
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.next_run_at == now + timedelta(seconds=20)
    assert second.next_run_at == now + timedelta(seconds=5)
    # …and a slot only a little late (within a quarter interval) still runs.
    ProbeLocation.objects.filter(id=first.id).update(next_run_at=now - timedelta(seconds=7))
    dispatch.dispatch_due(enqueue=lambda runs: [sent.setdefault(p.id, at) for p, _, at in runs], now=now)
    assert sent[first.id] == now - timedelta(seconds=7) and second.id not in sent


@pytest.mark.django_db
def test_a_pass_sends_every_due_run_however_many_there_are():
    placements = _placements(40)
    sent = []
    assert dispatch.dispatch_due(enqueue=sent.extend, limit=7) == 40
    assert len({p.id for p, _, _ in sent}) == 40
