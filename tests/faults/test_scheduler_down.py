"""Scheduler down, for real: celery beat is killed with SIGKILL while real workers run probes, and
the watchdog loop inside the workers (detection.heartbeat), which does not go through beat, tells
on-call and makes the public page say monitoring is delayed; when beat is back, it resolves."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings

from notifications.models import Channel, Delivery, EventKind
from detection.heartbeat import SCHEDULER, silent_after
from probes.models import Heartbeat, Location, PlacementState, ProbeLocation, Run
from detection.models import OwnProblem
from tests.faults.figures import figure
from tests.conftest import make_probe
from tests.notifications.conftest import WEBHOOK_SECRET, receiver, verify  # noqa: F401 (a fixture)
from tests.probes.test_worker import ROOT, database_url, wait_for, worker_for  # noqa: F401 (a fixture)

DISPATCH_EVERY = 2  # seconds: the scheduler is silent after 6 s without a dispatch
DELAYED = "Our monitoring has stopped sending its probes"


class Beat:
    """A real `celery -A vigie beat`, with its schedule file in a temporary folder."""

    def __init__(self, schedule) -> None:
        self.schedule = schedule
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
               "VIGIE_DATA_DIR": str(settings.DATA_DIR)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "vigie", "beat", "--loglevel", "WARNING",
             "--schedule", str(self.schedule)], cwd=ROOT, env=env)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def beat(tmp_path):
    beat = Beat(tmp_path / "celerybeat-schedule")
    yield beat
    if beat.process is not None and beat.process.poll() is None:
        beat.process.terminate()
        try:
            beat.process.wait(10)
        except subprocess.TimeoutExpired:
            beat.process.kill()


def silent_problem(**filters) -> OwnProblem | None:
    return OwnProblem.objects.filter(kind=OwnProblem.Kind.SCHEDULER_SILENT, **filters).first()


def problem_messages(receiver, kind: str) -> list:  # noqa: F811
    return [r for r in list(receiver.requests) if r.json()["type"] == kind]


@pytest.mark.django_db(transaction=True)
def test_with_beat_killed_on_call_hears_once_and_the_page_says_monitoring_is_delayed_until_beat_is_back(
        platform, sandbox, receiver, worker_for, beat, client, settings, monkeypatch):  # noqa: F811
    settings.DISPATCH_EVERY_SECONDS = DISPATCH_EVERY
    monkeypatch.setenv("VIGIE_DISPATCH_EVERY", str(DISPATCH_EVERY))  # for beat and the workers
    location = Location.objects.create(name=f"sac-{uuid.uuid4().hex[:8]}")
    probe = make_probe(platform, "read", [location], interval_s=2, component="Timeline")
    placement = ProbeLocation.objects.get(probe=probe)
    Channel.objects.create(name="on-call", kind=Channel.Kind.WEBHOOK, url=receiver.url + "/hook",
                           secret=WEBHOOK_SECRET)
    # Two workers, so two watchdog loops watch at once: Vigie's own queue, and the location's.
    worker_for(["vigie"])
    worker_for([location.queue])
    beat.start()
    restarted_at = time.time()

    # Beat dispatches, the location runs the probe, the scheduler's heartbeat is written.
    wait_for(lambda: Heartbeat.objects.filter(name=SCHEDULER).exists(), timeout=60)
    wait_for(lambda: ProbeLocation.objects.filter(id=placement.id).exclude(state=PlacementState.UNKNOWN).exists(),
             timeout=60)
    assert silent_problem() is None
    assert DELAYED not in client.get("/").content.decode()

    beat.kill()
    killed_at = time.time()
    problem = wait_for(lambda: silent_problem(resolved_at__isnull=True), timeout=30)
    detected_s = time.time() - killed_at
    figure("scheduler killed → own problem open", detected_s)
    last_beat = Heartbeat.objects.get(name=SCHEDULER).beat_at
    # Opened by the loop once the heartbeat was more than three dispatch intervals old, and by the
    # next pass or so (a dispatch already queued at the kill may have beaten once more).
    assert silent_after() < problem.opened_at - last_beat < silent_after() + timedelta(seconds=3 * DISPATCH_EVERY + 5)
    assert detected_s < 3 * DISPATCH_EVERY + 3 * DISPATCH_EVERY + 10

    # On-call is told through the notifications path: one signed webhook, delivered.
    [message] = wait_for(lambda: problem_messages(receiver, EventKind.PROBLEM_OPENED), timeout=30)
    figure("scheduler killed → on-call webhook received", time.time() - killed_at)
    assert verify(WEBHOOK_SECRET, message.headers["Vigie-Signature"], message.body)
    assert message.json()["data"]["title"] == "The scheduler dispatches nothing: scheduler"
    wait_for(lambda: Delivery.objects.filter(event__kind=EventKind.PROBLEM_OPENED,
                                             status=Delivery.Status.DELIVERED).exists(), timeout=15)

    # The public page says so, read at request time.
    html = client.get("/").content.decode()
    assert "Monitoring is delayed." in html and DELAYED in html

    # The loop does beat's watchdog work meanwhile: the placement goes unknown, yet no location is
    # blamed for what the scheduler did.
    wait_for(lambda: ProbeLocation.objects.filter(id=placement.id, state=PlacementState.UNKNOWN).exists(),
             timeout=30)
    assert not OwnProblem.objects.filter(kind=OwnProblem.Kind.STALE_LOCATION).exists()
    # The heartbeat has stopped, nothing more is dispatched, and two watchers made one notification.
    runs = Run.objects.count()
    time.sleep(3 * DISPATCH_EVERY)
    assert Heartbeat.objects.get(name=SCHEDULER).beat_at == last_beat
    assert Run.objects.count() == runs
    assert len(problem_messages(receiver, EventKind.PROBLEM_OPENED)) == 1
    assert OwnProblem.objects.filter(kind=OwnProblem.Kind.SCHEDULER_SILENT).count() == 1

    beat.start()
    wait_for(lambda: OwnProblem.objects.filter(id=problem.id, resolved_at__isnull=False).exists(), timeout=40)
    assert Heartbeat.objects.get(name=SCHEDULER).beat_at > last_beat
    [resolved] = wait_for(lambda: problem_messages(receiver, EventKind.PROBLEM_RESOLVED), timeout=30)
    figure("scheduler restarted → resolved webhook received", time.time() - restarted_at)
    assert verify(WEBHOOK_SECRET, resolved.headers["Vigie-Signature"], resolved.body)
    assert DELAYED not in client.get("/").content.decode()
    wait_for(lambda: Run.objects.count() > runs, timeout=30)  # probes run again
