"""Beat sends few messages: entries fall due on their interval's marks, and the light ones due at one
moment travel as one message, each still on its own interval (vigie/beat.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.conf import settings

from vigie.beat import LeasedScheduler, aligned
from vigie.celery import app, together

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=timezone.utc)  # a mark of every interval below


def at(seconds: float):
    return lambda: T0 + timedelta(seconds=seconds)


def test_an_aligned_entry_falls_due_on_its_marks_once_per_interval():
    def every_15(now_s):
        return aligned(timedelta(seconds=15), nowfun=at(now_s))

    last_run = T0 + timedelta(seconds=3.2)  # it ran at 12:00:03 (beat started then, say)
    assert not every_15(14.0).is_due(last_run).is_due
    assert every_15(14.0).is_due(last_run).next == pytest.approx(1.0)  # woken at the mark, not 15 s after
    assert every_15(15.0).is_due(last_run).is_due
    ran = T0 + timedelta(seconds=15.02)  # sent at 12:00:15.02: the next is at :30, not at :30.02
    assert not every_15(29.99 - aligned.EARLY).is_due(ran).is_due
    assert every_15(30.0).is_due(ran).is_due
    assert every_15(30.0).is_due(ran).next == pytest.approx(15.0)


def test_a_mark_woken_for_a_little_early_is_due_and_not_run_again_at_the_mark():
    # Beat wakes 10 ms ahead of what it is told: that counts as the mark, once.
    early = T0 + timedelta(seconds=14.99)
    assert aligned(timedelta(seconds=15), nowfun=at(14.99)).is_due(T0).is_due
    assert not aligned(timedelta(seconds=15), nowfun=at(15.01)).is_due(early).is_due


def test_entries_whose_intervals_divide_one_another_fall_due_at_the_same_moment():
    last_runs = [T0 + timedelta(seconds=s) for s in (1.0, 7.5, 16.0)]
    at_30 = [aligned(timedelta(seconds=every), nowfun=at(30.0)).is_due(last).is_due
             for every, last in zip((30, 15, 10), last_runs)]
    assert at_30 == [True, True, True]


@pytest.fixture
def scheduler(tmp_path, monkeypatch):
    sent, together_sent = [], []
    monkeypatch.setattr(LeasedScheduler, "apply_async",
                        lambda self, entry, producer=None, advance=True, **kw: sent.append(entry.task))
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **options: together_sent.append((name, args, options)))
    monkeypatch.setattr("probes.lease.lease_hold", lambda holder: True)  # it leads
    app.loader.import_default_modules()  # as `celery beat` does when it starts
    beat = LeasedScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    beat.setup_schedule()
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    for entry in beat.schedule.values():
        entry.last_run_at = long_ago  # every entry is due
    beat.sent, beat.together_sent = sent, together_sent
    yield beat
    beat.leading = None  # nothing to give up: the lease was never taken
    beat.close()


@pytest.mark.django_db
def test_the_light_entries_due_at_one_moment_go_as_one_message_and_the_others_alone(scheduler):
    for _ in range(50):
        if scheduler.tick() > 0:
            break
    assert sorted(scheduler.sent) == sorted({entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
                                            - set(settings.VIGIE_BEAT_TOGETHER))
    assert "probes.tasks.dispatch_due" in scheduler.sent
    [(name, args, options)] = scheduler.together_sent
    assert name == together.name
    assert sorted(args[0]) == sorted(settings.VIGIE_BEAT_TOGETHER)
    assert options["time_limit"] == sum(app.tasks[name].time_limit for name in settings.VIGIE_BEAT_TOGETHER)
    assert options["expires"] == min(entry["options"]["expires"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
                                     if entry["task"] in settings.VIGIE_BEAT_TOGETHER)
    # And not again until their next marks.
    assert scheduler.tick() > 0
    assert len(scheduler.together_sent) == 1


def test_every_scheduled_entry_falls_due_on_its_marks(scheduler):
    assert {type(entry.schedule) for name, entry in scheduler.schedule.items()
            if name in settings.CELERY_BEAT_SCHEDULE} == {aligned}


def test_together_runs_each_task_in_the_configured_order_and_one_failing_stops_none(monkeypatch):
    app.loader.import_default_modules()
    ran = []

    def runs(name, fails=False):
        def run():
            ran.append(name)
            if fails:
                raise RuntimeError("the database went away")
        return run

    first, second = settings.VIGIE_BEAT_TOGETHER[:2]
    monkeypatch.setattr(app.tasks[first], "run", runs(first, fails=True))
    monkeypatch.setattr(app.tasks[second], "run", runs(second))
    together([second, first, "probes.tasks.dispatch_due"])  # a name not among the light ones is not run
    assert ran == [first, second]


def test_the_light_tasks_are_scheduled_and_the_dispatcher_is_not_among_them():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert set(settings.VIGIE_BEAT_TOGETHER) <= scheduled
    assert "probes.tasks.dispatch_due" not in settings.VIGIE_BEAT_TOGETHER
