"""Every run that was due and not performed is a counted fact (probes.drops), and so is how late
each performed run started after its slot."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone as dt_timezone
from types import SimpleNamespace

import pytest
from django.db.models import Sum
from django.utils import timezone
from hypothesis import given, settings as hypothesis_settings, strategies as st

from probes import deadletter, dispatch, drops, runner, spool, tasks
from probes.models import (Account, DroppedRun, DropReason, Location, Platform, Probe, ProbeLocation, Run,
                           TaskDelivery)
from probes.runner import run_payload

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def placement(db) -> ProbeLocation:
    platform = Platform.objects.create(name="P", slug="p", kind="sandbox", base_url="http://127.0.0.1:9")
    probe = Probe.objects.create(name="Post", slug="p-post", platform=platform, action="post", interval_s=30,
                                 timeout_s=5)
    return ProbeLocation.objects.create(probe=probe, location=Location.objects.create(name="atlanta"),
                                        next_run_at=timezone.now())


def dropped(reason: str) -> int:
    return DroppedRun.objects.filter(reason=reason).aggregate(n=Sum("count"))["n"] or 0


def test_a_late_dispatcher_counts_each_slot_it_jumps_over(placement):
    now = timezone.now()
    ProbeLocation.objects.filter(id=placement.id).update(next_run_at=now - timedelta(seconds=95))  # interval 30 s
    dispatch.dispatch_due(enqueue=lambda runs: None, now=now)
    assert dropped(DropReason.SKIPPED) == 3  # -95, -65, -35 skipped; -5 sent
    dispatch.dispatch_due(enqueue=lambda runs: None, now=now)  # nothing due: nothing more counted
    assert dropped(DropReason.SKIPPED) == 3


@given(minute=st.integers(0, 59), second=st.integers(0, 59), interval_s=st.integers(1, 7200),
       n=st.integers(0, 500))
@hypothesis_settings(max_examples=200, deadline=None)
def test_slots_by_hour_counts_each_slot_in_its_own_hour(minute, second, interval_s, n):
    first = T0.replace(minute=minute, second=second)
    interval = timedelta(seconds=interval_s)
    expected: dict[datetime, int] = {}
    for i in range(n):
        hour = drops.hour_of(first + interval * i)
        expected[hour] = expected.get(hour, 0) + 1
    found: dict[datetime, int] = {}
    for slot, count in drops.slots_by_hour(first, interval, n):
        found[drops.hour_of(slot)] = found.get(drops.hour_of(slot), 0) + count
    assert found == expected


def test_a_run_that_reaches_its_worker_after_its_slot_is_not_run_and_is_counted(placement):
    late = timezone.now() - timedelta(seconds=61)  # two intervals ago
    assert runner.runs_execute([(placement.id, str(uuid.uuid4()), late)]) == []
    assert not Run.objects.exists()
    row = DroppedRun.objects.get()
    assert (row.probe_id, row.location_id, row.reason, row.count) == (
        placement.probe_id, placement.location_id, DropReason.EXPIRED, 1)
    assert row.hour == drops.hour_of(late)


def test_a_message_the_broker_expired_counts_its_runs(placement):
    slot = timezone.now().isoformat()
    request = SimpleNamespace(args=[[[placement.id, str(uuid.uuid4()), slot], [placement.id, str(uuid.uuid4()), slot]]])
    tasks.run_expired(sender=tasks.run_batch, request=request, expired=True)
    tasks.run_expired(sender=tasks.run_batch, request=request, expired=False)  # revoked by hand: not a drop
    assert dropped(DropReason.MESSAGE_EXPIRED) == 2


def test_a_dead_letter_counts_the_runs_it_held(placement):
    now = timezone.now()
    row = TaskDelivery.objects.create(task_id="t", task_name=tasks.run_batch.name, deliveries=4,
                                      first_seen_at=now, last_seen_at=now)
    args = [[[placement.id, str(uuid.uuid4()), now.isoformat()]]]
    deadletter.delivery_set_aside(row=row, args=args, kwargs={}, why="its worker died")
    deadletter.delivery_set_aside(row=row, args=args, kwargs={}, why="its worker died")  # once only
    assert dropped(DropReason.DEAD_LETTER) == 1
    assert TaskDelivery.objects.get().state == TaskDelivery.State.DEAD


def test_arguments_holding_a_secret_are_redacted_and_not_retried(placement):
    Account.objects.create(platform=placement.probe.platform, role="prober", username="u",
                           token="a-platform-token-1234567890")
    row = deadletter.delivery_begin(task_id="t", task_name="x", queue="q")
    again = deadletter.delivery_begin(task_id="t", task_name="x", queue="q")
    assert (row.deliveries, again.deliveries, again.id) == (1, 2, row.id)
    deadletter.delivery_set_aside(row=again, args=[1, "a-platform-token-1234567890"], kwargs={})
    row.refresh_from_db()
    assert "a-platform-token-1234567890" not in str(row.args) and not row.retryable
    assert row.state == TaskDelivery.State.DEAD
    assert deadletter.dead_letter_retry(row_id=row.id) is None  # never sent again with [redacted] in it
    assert TaskDelivery.objects.filter(id=row.id).exists()
    assert deadletter.dead_letter_discard(row_id=row.id)
    assert not TaskDelivery.objects.exists()


def late_payload(placement: ProbeLocation, lateness_s: float) -> dict:
    return run_payload(key=str(uuid.uuid4()), placement=placement, scheduled_for=T0,
                       started_at=T0 + timedelta(seconds=lateness_s), latency_ms=10, failure=None, steps=[],
                       evidence={}, cleanup="none", secrets=[])


def test_lateness_is_counted_once_per_run_stored_and_read_as_percentiles(placement):
    payloads = [late_payload(placement, 0.03) for _ in range(98)] + [late_payload(placement, 20),
                                                                     late_payload(placement, 400)]
    spool.runs_store(payloads)
    spool.runs_store(payloads[:10])  # stored already: not counted again
    histogram = drops.lateness_histogram(since=T0)
    assert sum(histogram.values()) == 100
    assert drops.lateness_percentile(histogram, 0.5) == 0.05
    assert drops.lateness_percentile(histogram, 0.99) == 30.0
    assert drops.lateness_percentile(histogram, 1.0) == float("inf")
    assert drops.lateness_histogram(since=T0 + timedelta(hours=1)) == {}


@pytest.mark.django_db
def test_a_dead_letter_error_hides_notification_secrets_too():
    from notifications.models import Channel

    Channel.objects.create(name="pager", kind="apprise", url="slack://TokenA-123456/TokenB-654321/TokenC-999999")
    now = timezone.now()
    TaskDelivery.objects.create(task_id="t", task_name="x", first_seen_at=now, last_seen_at=now)
    text = deadletter.delivery_failed(task_id="t", error=RuntimeError(
        "could not post to slack://TokenA-123456/TokenB-654321/TokenC-999999"))
    assert "TokenB-654321" not in text and TaskDelivery.objects.get().last_error == text


def test_counts_older_than_what_is_kept_are_pruned(placement):
    now = timezone.now()
    old = now - drops.FACTS_KEPT - timedelta(hours=2)
    drops.runs_dropped_add([(placement.probe_id, placement.location_id, DropReason.EXPIRED, old),
                            (placement.probe_id, placement.location_id, DropReason.EXPIRED, now)])
    drops.lateness_add([SimpleNamespace(location_id=placement.location_id, scheduled_for=old, started_at=old),
                        SimpleNamespace(location_id=placement.location_id, scheduled_for=now, started_at=now)])
    assert drops.facts_prune(now=now) == 2
    assert dropped(DropReason.EXPIRED) == 1 and sum(drops.lateness_histogram().values()) == 1
