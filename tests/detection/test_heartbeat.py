"""The scheduler's heartbeat and the watchdog that reads it, one step at a time on a pinned clock.
(tests/faults/test_scheduler_down.py kills a real beat process.)"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import Event, EventKind
from detection import evaluation
from probes import tasks
from detection.heartbeat import SCHEDULER, heartbeat_beat, scheduler_check, scheduler_silent
from probes.models import Heartbeat, Location, Platform, Probe, ProbeLocation
from detection.models import OwnProblem
from detection.simulation import demo_layout, record_run

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=dt_timezone.utc)
SILENT = OwnProblem.Kind.SCHEDULER_SILENT


@pytest.fixture
def clock(db, settings):
    settings.DISPATCH_EVERY_SECONDS = 2  # silent after 6 s
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def open_problems(kind=SILENT):
    return list(OwnProblem.objects.filter(kind=kind, resolved_at__isnull=True))


def test_the_dispatch_task_writes_the_scheduler_heartbeat_in_one_query_once_it_exists(clock):
    assert tasks.dispatch_due.apply().get() == 0
    beat = Heartbeat.objects.get(name=SCHEDULER)
    assert (beat.beat_at, beat.detail) == (NOW, "0 run(s) sent")

    clock.shift(2)
    with CaptureQueriesContext(connection) as queries:
        heartbeat_beat(SCHEDULER)
    assert len(queries) == 1
    assert Heartbeat.objects.get(name=SCHEDULER).beat_at == NOW + timedelta(seconds=2)


def test_a_scheduler_silent_past_three_dispatch_intervals_is_one_problem_for_on_call(
        clock, django_capture_on_commit_callbacks):
    heartbeat_beat(SCHEDULER)
    clock.shift(6)
    assert scheduler_check() is False  # three intervals exactly: not yet
    assert not scheduler_silent()
    clock.shift(0.5)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduler_check() is True
        assert scheduler_check() is True  # a second worker's watcher, or the next pass
    assert scheduler_silent()

    [problem] = open_problems()
    assert problem.subject == SCHEDULER
    assert "no probe dispatched since 2026-11-20 12:00:00 UTC" in problem.detail
    [event] = Event.objects.all()
    assert event.kind == EventKind.PROBLEM_OPENED
    assert event.payload["title"] == "The scheduler dispatches nothing: scheduler"


def test_a_fresh_heartbeat_resolves_the_problem_and_on_call_hears_so(clock, django_capture_on_commit_callbacks):
    heartbeat_beat(SCHEDULER)
    clock.shift(30)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduler_check() is True
    clock.shift(1)
    heartbeat_beat(SCHEDULER)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduler_check() is False
    assert open_problems() == []
    assert OwnProblem.objects.get(kind=SILENT).resolved_at == NOW + timedelta(seconds=31)
    assert list(Event.objects.order_by("id").values_list("kind", flat=True)) == [EventKind.PROBLEM_OPENED,
                                                                                 EventKind.PROBLEM_RESOLVED]


def test_a_watcher_just_started_neither_judges_an_old_heartbeat_nor_undoes_another_watchers_finding(clock):
    heartbeat_beat(SCHEDULER, now=NOW - timedelta(hours=1))  # from the last time Vigie ran
    assert scheduler_check(watching_since=NOW) is None
    assert open_problems() == []

    assert scheduler_check(watching_since=NOW - timedelta(minutes=5)) is True  # an older worker's watcher
    assert scheduler_check(watching_since=NOW) is None
    assert len(open_problems()) == 1
    clock.shift(6.5)
    assert scheduler_check(watching_since=NOW) is True


def test_no_heartbeat_at_all_is_not_silence(clock):
    clock.shift(3600)
    assert scheduler_check() is None
    assert not scheduler_silent()
    assert open_problems() == []


def test_while_the_scheduler_is_silent_the_watchdog_blames_no_location(clock):
    platform = Platform.objects.create(name="P", slug="p", kind="sandbox", base_url="http://127.0.0.1:9")
    probe = Probe.objects.create(name="Post", slug="p-post", platform=platform, action="post", interval_s=10,
                                 timeout_s=5)
    ProbeLocation.objects.create(probe=probe, location=Location.objects.create(name="sacramento"), next_run_at=NOW)
    heartbeat_beat(SCHEDULER)
    clock.shift(31)  # three probe intervals without a run: the location is stale; the scheduler silent

    assert evaluation.watchdog()["stale_locations"] == ["sacramento"]
    assert open_problems(OwnProblem.Kind.STALE_LOCATION) == []

    heartbeat_beat(SCHEDULER)  # the scheduler dispatches again and the location still sends nothing
    evaluation.watchdog()
    assert [p.subject for p in open_problems(OwnProblem.Kind.STALE_LOCATION)] == ["sacramento"]


def test_the_page_says_monitoring_is_delayed_as_soon_as_the_scheduler_is_silent(client, clock):
    demo_layout(locations=["sacramento"], created_at=NOW - timedelta(days=1))
    for placement in ProbeLocation.objects.all():
        record_run(placement, NOW - timedelta(seconds=1), latency_ms=100)
    heartbeat_beat(SCHEDULER)
    assert "Monitoring is delayed" not in client.get("/").content.decode()

    clock.shift(7)  # runs 8 s old, probes every 30 s: only the heartbeat says anything is wrong
    html = client.get("/").content.decode()
    assert "Monitoring is delayed." in html
    assert "Our monitoring has stopped sending its probes" in html
    assert "Some locations have sent no probe results" not in html
    assert "Last known: All Systems Operational" in html
    assert "Notre surveillance n’envoie plus ses sondes" in client.get("/fr/").content.decode()

    heartbeat_beat(SCHEDULER)
    assert "Monitoring is delayed" not in client.get("/").content.decode()


def test_the_watchdog_finding_the_scheduler_silent_renews_the_cached_page_at_once(
        client, clock, settings, django_capture_on_commit_callbacks):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 30
    demo_layout(locations=["sacramento"], created_at=NOW - timedelta(days=1))
    for placement in ProbeLocation.objects.all():
        record_run(placement, NOW - timedelta(seconds=1), latency_ms=100)
    heartbeat_beat(SCHEDULER)
    assert "Monitoring is delayed" not in client.get("/").content.decode()

    clock.shift(7)
    assert "Monitoring is delayed" not in client.get("/").content.decode()  # served from the cache
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduler_check() is True
    assert "Monitoring is delayed" in client.get("/").content.decode()

    heartbeat_beat(SCHEDULER)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduler_check() is False
    assert "Monitoring is delayed" not in client.get("/").content.decode()
