"""A real Celery worker process, on the configured broker, runs probes end to end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from probes import dispatch, tasks
from probes.models import FailureClass, Location, Outcome, ProbeLocation, Run
from tests.conftest import make_probe

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_for():
    processes: list[subprocess.Popen] = []

    def start(queues: list[str]) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
               "VIGIE_DATA_DIR": str(settings.DATA_DIR)}
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "vigie", "worker", "-Q", ",".join(queues),
             "--pool", "threads", "--concurrency", "4", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel", "WARNING", "-n", f"test-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=env,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_dispatched_probes_from_each_location_once(platform, sandbox, worker_for):
    # Queue names unique to this test, so nothing else on the broker is consumed or left behind.
    suffix = uuid.uuid4().hex[:8]
    locations = [Location.objects.create(name=f"sac-{suffix}"), Location.objects.create(name=f"atl-{suffix}")]
    post = make_probe(platform, "post", locations)
    sandbox.fault("quota_exceeded", "post", location=locations[1].name)
    worker_for([location.queue for location in locations])

    assert dispatch.dispatch_due(enqueue=tasks._send_runs) == 2
    # The same run sent again (a redelivery) must not be stored twice.
    placement = ProbeLocation.objects.get(probe=post, location=locations[0])
    key = str(uuid.uuid4())
    for _ in range(2):
        tasks.run_probe.apply_async(args=[placement.id, key, timezone.now().isoformat()], queue=locations[0].queue)

    runs = wait_for(lambda: Run.objects.count() >= 3 and list(Run.objects.order_by("location__name")))
    time.sleep(1.0)  # a duplicate, if any, would arrive now
    assert Run.objects.count() == 3
    assert Run.objects.filter(key=key).count() == 1
    by_location = {run.location.name: run for run in runs if str(run.key) != key}
    assert by_location[locations[0].name].outcome == Outcome.SUCCESS
    assert by_location[locations[1].name].failure_class == FailureClass.QUOTA_EXCEEDED
    assert by_location[locations[1].name].evidence["status_code"] == 429
    wait_for(lambda: sandbox.leftovers() == 0, timeout=10)


@pytest.mark.django_db
def test_running_the_same_task_twice_records_one_run(platform, locations, sandbox):
    probe = make_probe(platform, "read", locations)
    placement = ProbeLocation.objects.get(probe=probe, location=locations[0])
    key = str(uuid.uuid4())
    for _ in range(2):
        tasks.run_probe.apply(args=[placement.id, key, timezone.now().isoformat()]).get()
    assert Run.objects.filter(key=key).count() == 1
