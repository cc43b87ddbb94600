"""A worker killed (kill -9) in the middle of a run: the run is run again and recorded once, one
incident at most, and what the killed attempt created on the platform is still cleaned up."""
from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from probes import runner, tasks
from probes.models import Artifact, FailureClass, Location, Probe, ProbeLocation, Run
from detection.models import Incident
from vigie.celery import app
from tests.faults.figures import figure
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe
from tests.faults.processes import children, processes, redis_server_installed, wait_for  # noqa: F401 (fixtures)

PROBE_TIMEOUT_S = 4
# The post's read-back hangs past the probe's timeout: a window to kill the worker in, after the
# post was made (and put on record) and before the run is recorded. The run then fails (timeout),
# and with a threshold of one failing run and no confirmation, it opens an incident.
SLOW_READ = "slow:8000"
VISIBILITY_TIMEOUT_S = 3
# A run's slot, in the test: long enough for the first worker to take it on a loaded machine.
EXPIRES_S = 8


def failing_post(platform) -> ProbeLocation:
    location = Location.objects.create(name=f"kill-{uuid.uuid4().hex[:8]}")
    probe = make_probe(platform, "post", [location], timeout_s=PROBE_TIMEOUT_S, interval_s=300, component="Posting")
    Probe.objects.filter(id=probe.id).update(failure_threshold=1)
    return ProbeLocation.objects.get(probe=probe)


def ready(processes, worker) -> None:  # noqa: F811
    wait_for(lambda: " ready." in processes.log(worker), timeout=90, what="the worker to be ready")


def made_mid_run(key: str) -> Artifact:
    """Wait until the run has made its post (on record) and is still running."""
    made = wait_for(lambda: Artifact.objects.filter(run_key=key).first(), timeout=60, what="the run's post")
    assert not Run.objects.filter(key=key).exists(), "the run finished before the kill"
    return made


def settled_once(key: str, killed_at) -> Run:
    run = wait_for(lambda: Run.objects.filter(key=key).first(), timeout=90, what="the run to be recorded")
    time.sleep(2.0)  # a second recording, if any, would arrive now
    assert Run.objects.filter(key=key).count() == 1
    # Started after the kill: run again from the start, not finished by the process killed.
    assert run.started_at > killed_at
    assert run.failure_class == FailureClass.TIMEOUT
    assert Incident.objects.count() == 1
    return run


def cleaned_by_the_rerun(made: Artifact, key: str, sandbox) -> None:
    """The re-run posts with the same idempotency key (the run key), so the platform hands back
    the killed attempt's post instead of making a second one, and the re-run removes it. Its
    read-back of the delete hangs like every read here, so the delete is not verified yet: the
    artifact stays pending, and the periodic cleanup reads it back gone once reads answer."""
    assert Artifact.objects.filter(run_key=key).count() == 1
    assert sandbox.leftovers() == 0  # deleted by the re-run
    made.refresh_from_db()
    assert made.cleaned_at is None  # but not yet seen gone: never marked clean on faith
    sandbox.clear_faults()
    Artifact.objects.filter(id=made.id).update(next_attempt_at=timezone.now())  # its backoff, skipped
    assert runner.cleanup_pending(min_age=timedelta(0)) == 1
    made.refresh_from_db()
    assert made.cleaned_at is not None


def cleaned_by_cleanup_pending(made: Artifact, sandbox) -> None:
    """Nobody ran it again: the killed attempt's post is on record, still on the platform, and
    the periodic cleanup removes it."""
    made.refresh_from_db()
    assert made.cleaned_at is None
    assert sandbox.leftovers() == 1
    assert runner.cleanup_pending(min_age=timedelta(0)) == 1
    assert sandbox.leftovers() == 0
    assert not Artifact.objects.filter(cleaned_at__isnull=True).exists()


def no_secrets(processes) -> None:  # noqa: F811
    for process in processes.started:
        log = processes.log(process)
        assert PROBER_TOKEN not in log and PARTNER_TOKEN not in log


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_pool_process_is_killed_is_run_again_and_recorded_once(platform, sandbox, processes):  # noqa: F811
    placement = failing_post(platform)
    sandbox.fault(SLOW_READ, "read")
    worker = processes.worker([placement.location.queue], pool="prefork", concurrency=1,
                              VIGIE_INCIDENT_CONFIRM_RUNS="0")
    ready(processes, worker)
    [pool_process] = wait_for(lambda: children(worker.pid), what="the worker's pool process")

    key = str(uuid.uuid4())
    tasks.run_probe.apply_async(args=[placement.id, key, timezone.now().isoformat()],
                                queue=placement.location.queue, expires=120)
    made = made_mid_run(key)
    os.kill(pool_process, signal.SIGKILL)
    killed_at = timezone.now()

    settled_once(key, killed_at)
    figure("pool process killed mid-run → run recorded by the re-run (which waits out its probe timeout)",
           (timezone.now() - killed_at).total_seconds())
    assert worker.poll() is None and pool_process not in children(worker.pid)  # a new pool process ran it
    cleaned_by_the_rerun(made, key, sandbox)
    no_secrets(processes)


def private_broker(broker: str, processes, request) -> tuple[str, dict, dict]:  # noqa: F811
    """The URL, sender's transport options and worker environment of a broker of the test's own."""
    env = {"VIGIE_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S), "VIGIE_INCIDENT_CONFIRM_RUNS": "0"}
    if broker == "redis":
        request.getfixturevalue("redis_server_installed")
        _, port = processes.redis()
        return f"redis://127.0.0.1:{port}/0", {}, env
    # A folder of its own, so that restoring messages after 3 s touches no other test's.
    data = processes.logs / "data"
    folders = {name: str(data / "broker" / name) for name in ("queue", "processed", "control", "unacked")}
    options = {"data_folder_in": folders["queue"], "data_folder_out": folders["queue"],
               "processed_folder": folders["processed"], "control_folder": folders["control"],
               "unacked_folder": folders["unacked"]}
    env.update(VIGIE_DATA_DIR=str(data), VIGIE_SECRET_KEY=settings.SECRET_KEY)
    return "filesystem://localhost//", options, env


def send_run(placement: ProbeLocation, key: str, url: str, options: dict, expires: float) -> None:
    with app.connection_for_write(url, transport_options=options) as connection:
        tasks.run_probe.apply_async(args=[placement.id, key, timezone.now().isoformat()],
                                    queue=placement.location.queue, expires=expires, connection=connection)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_a_run_whose_whole_worker_is_killed_is_redelivered_to_a_fresh_worker(broker, platform, sandbox,
                                                                             processes, request):  # noqa: F811
    """kill -9 of the worker and all it forked, as when its machine is lost: the message it held
    unacknowledged goes back to the queue after the visibility timeout, and another worker runs it."""
    url, options, env = private_broker(broker, processes, request)
    placement = failing_post(platform)
    sandbox.fault(SLOW_READ, "read")
    first = processes.worker([placement.location.queue], broker_url=url, concurrency=1, **env)
    ready(processes, first)

    key = str(uuid.uuid4())
    send_run(placement, key, url, options, expires=120)
    made = made_mid_run(key)
    processes.kill(first)
    killed_at = timezone.now()

    time.sleep(VISIBILITY_TIMEOUT_S + 1.5)  # the message was taken before the kill: visible again by now
    assert not Run.objects.filter(key=key).exists()
    fresh = processes.worker([placement.location.queue], broker_url=url, concurrency=1, **env)
    settled_once(key, killed_at)
    assert fresh.poll() is None
    cleaned_by_the_rerun(made, key, sandbox)
    no_secrets(processes)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_a_run_given_back_after_its_slot_is_dropped_with_a_warning_and_its_post_cleaned(
        broker, platform, sandbox, processes, request):  # noqa: F811
    """In production the visibility timeout (an hour) outlasts a run's slot (one interval): the run
    taken back from a dead worker has expired, so it is not run late, the worker says so, and the
    post the dead worker made is removed by cleanup_pending."""
    url, options, env = private_broker(broker, processes, request)
    placement = failing_post(platform)
    sandbox.fault(SLOW_READ, "read")
    first = processes.worker([placement.location.queue], broker_url=url, concurrency=1, **env)
    ready(processes, first)

    key = str(uuid.uuid4())
    sent_at = time.monotonic()
    send_run(placement, key, url, options, expires=EXPIRES_S)
    made = made_mid_run(key)
    processes.kill(first)

    time.sleep(max(0.0, sent_at + EXPIRES_S + 1 - time.monotonic()))  # given back only once expired
    fresh = processes.worker([placement.location.queue], broker_url=url, concurrency=1, **env)
    wait_for(lambda: key in processes.log(fresh) and "expired before a worker could run it" in processes.log(fresh),
             timeout=60, what="the fresh worker to drop the expired run")
    assert not Run.objects.filter(key=key).exists()
    assert Incident.objects.count() == 0
    cleaned_by_cleanup_pending(made, sandbox)
    no_secrets(processes)
