"""Poison messages against a real worker on the embedded broker: a task that kills its process or
raises on every delivery is delivered a bounded number of times, then set aside as a dead letter,
which on-call retries or discards from the dashboard. The same worker, as it starts, stores a run
left in the spool by an outage (it does not wait for the next run on the machine)."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from probes import spool
from probes.models import Location, Run, TaskDelivery
from probes.runner import run_payload
from tests.conftest import PROBER_TOKEN, make_probe
from tests.faults.processes import processes, wait_for  # noqa: F401 (fixture)

MAX_DELIVERIES = 2


def poison_worker(processes, queue: str):  # noqa: F811
    worker = processes.start("worker", [
        sys.executable, "-m", "celery", "-A", "vigie", "worker", "-Q", queue, "--include", "tests.faults.poison_tasks",
        "--pool", "prefork", "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "INFO", "-n", f"poison-{uuid.uuid4().hex[:6]}@%h",
    ], processes.env(VIGIE_TASK_MAX_DELIVERIES=str(MAX_DELIVERIES)))
    wait_for(lambda: " ready." in processes.log(worker), timeout=90, what="the worker to be ready")
    return worker


def dead(task_id: str) -> TaskDelivery:
    return wait_for(lambda: TaskDelivery.objects.filter(task_id=task_id, state=TaskDelivery.State.DEAD).first(),
                    timeout=90, what=f"task {task_id} to be set aside")


def lines(journal: Path) -> list[str]:
    """What each delivery that reached the task's code was asked to do."""
    return [line.split()[0] for line in journal.read_text().splitlines()] if journal.exists() else []


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("oncall", password="correct horse battery",
                                                             is_staff=True))
    return client


@pytest.mark.django_db(transaction=True)
def test_a_poison_message_is_delivered_a_bounded_number_of_times_then_set_aside(
        platform, processes, tmp_path, staff_client):  # noqa: F811
    from tests.faults.poison_tasks import crash

    # A run made while the database was down waits in the spool; nothing else runs on this machine.
    placement = make_probe(platform, "post", [Location.objects.create(name="spooled")]).placements.get()
    now = timezone.now()
    left = run_payload(key=str(uuid.uuid4()), placement=placement, scheduled_for=now, started_at=now, latency_ms=5,
                       failure=None, steps=[], evidence={}, cleanup="none", secrets=[])
    spool.spool_write(left)

    queue = f"poison-{uuid.uuid4().hex[:6]}"
    worker = poison_worker(processes, queue)
    wait_for(lambda: Run.objects.filter(key=left["key"]).exists(), timeout=30, what="the spool drained at start")
    assert not spool.spool_pending()

    # The worker's pool process dies during every delivery: each is counted before the work starts.
    exits = tmp_path / "exits"
    killer = crash.apply_async(args=["exit", str(exits)], queue=queue)
    letter = dead(killer.id)
    assert lines(exits) == ["exit"] * MAX_DELIVERIES  # the last delivery was set aside without running
    assert letter.deliveries == MAX_DELIVERIES + 1
    assert "worker died" in letter.last_error
    assert worker.poll() is None  # the worker itself lives on

    # An exception on every delivery: retried with backoff (same task id), then set aside.
    raises = tmp_path / "raises"
    raiser = crash.apply_async(args=["raise", str(raises)], kwargs={"secret": PROBER_TOKEN}, queue=queue)
    letter = dead(raiser.id)
    assert lines(raises) == ["raise"] * MAX_DELIVERIES
    assert letter.deliveries == MAX_DELIVERIES
    assert letter.last_error.startswith("RuntimeError: poisoned by ")
    assert PROBER_TOKEN not in letter.last_error and PROBER_TOKEN not in str(letter.kwargs)
    assert not letter.retryable  # its arguments were redacted: sending them again would be wrong
    assert (letter.last_seen_at - letter.first_seen_at).total_seconds() >= 4  # the backoff (5 s)

    page = staff_client.get("/oncall/").content.decode()
    assert "tests.poison.crash" in page and killer.id in page and PROBER_TOKEN not in page

    # On-call fixed the cause and retries the first: it runs once more, succeeds, and its row goes.
    Path(str(exits) + ".heal").touch()
    killer_letter = TaskDelivery.objects.get(task_id=killer.id)
    response = staff_client.post(f"/oncall/dead-letters/{killer_letter.id}/retry")
    assert response.status_code == 302
    wait_for(lambda: len(lines(exits)) == MAX_DELIVERIES + 1, timeout=60, what="the retried task to run")
    wait_for(lambda: not TaskDelivery.objects.filter(task_name="tests.poison.crash",
                                                     state=TaskDelivery.State.ACTIVE).exists(),
             timeout=30, what="the retried task's row to go")
    assert not TaskDelivery.objects.filter(task_id=killer.id).exists()

    # …and discards the second.
    raiser_letter = TaskDelivery.objects.get(task_id=raiser.id)
    assert staff_client.post(f"/oncall/dead-letters/{raiser_letter.id}/discard").status_code == 302
    assert not TaskDelivery.objects.exists()
    assert PROBER_TOKEN not in processes.log(worker)
