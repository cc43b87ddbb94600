"""The broker (Redis) goes down and comes back: the public site keeps serving without waiting on
it, a web request that sends a task answers at once, the gap shows as stale data (no incident),
and the worker and beat pick up again by themselves on the same address."""
from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from notifications.models import Subscriber
from detection.models import ComponentStatus, ComponentStatusChange, Incident
from probes.models import Location, Outcome, Run
from tests.faults.figures import figure
from tests.conftest import make_probe
from tests.faults.processes import processes, redis_server_installed, wait_for  # noqa: F401 (fixtures)

INTERVAL_S = 3  # stale after 3 intervals without a run: 9 s
STALE = "Monitoring is delayed."
PUBLIC = ("/", "/api/v2/summary.json", "/history.atom")
# Far longer than a page takes, far shorter than a send waiting on a broker that is not there.
QUICK_S = 8.0
OUTAGES = (ComponentStatus.PARTIAL, ComponentStatus.MAJOR)


def timed_get(url: str) -> tuple[requests.Response, float]:
    began = time.monotonic()
    response = requests.get(url, timeout=60)
    return response, time.monotonic() - began


def page(web: str) -> str:
    response = requests.get(web + "/", timeout=60)
    assert response.status_code == 200
    return response.text


def subscribe(web: str, email: str) -> tuple[requests.Response, float]:
    """The public subscription form: a web request that queues a task (the confirmation email)."""
    session = requests.Session()
    form = session.get(web + "/subscribe/", timeout=60)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    began = time.monotonic()
    response = session.post(web + "/subscribe/", data={"csrfmiddlewaretoken": token, "email": email},
                            headers={"Referer": web + "/subscribe/"}, timeout=60)
    return response, time.monotonic() - began


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_site_serves_the_gap_shows_as_stale_and_runs_resume(
        platform, sandbox, processes, redis_server_installed):  # noqa: F811
    redis, port = processes.redis()
    broker = f"redis://127.0.0.1:{port}/0"
    location = Location.objects.create(name=f"down-{uuid.uuid4().hex[:8]}")
    probe = make_probe(platform, "read", [location], interval_s=INTERVAL_S, component="Timeline")
    worker = processes.worker(["vigie", location.queue], broker_url=broker, VIGIE_DISPATCH_EVERY="1")
    beat = processes.beat(broker_url=broker, VIGIE_DISPATCH_EVERY="1")
    web_process, web = processes.web(broker_url=broker, VIGIE_PUBLIC_CACHE_SECONDS="1")
    wait_for(lambda: Run.objects.filter(probe=probe).count() >= 2, timeout=90, what="the first runs")
    wait_for(lambda: STALE not in page(web), timeout=30, what="a page with fresh data")

    processes.kill(redis)
    broker_killed = time.monotonic()
    for path in PUBLIC:
        response, took = timed_get(web + path)
        assert response.status_code == 200, path
        assert took < QUICK_S, f"{path} took {took:.1f} s with the broker down"
        figure(f"broker down → GET {path} answered", took)
    response, took = subscribe(web, "reader@example.org")
    assert response.status_code == 200 and took < QUICK_S, (response.status_code, took)
    assert Subscriber.objects.filter(email="reader@example.org").exists()
    # The confirmation could not be queued: said in the log, not as a 500.
    wait_for(lambda: "on_commit" in processes.log(web_process), timeout=10, what="the logged failure")

    # No run reaches a worker: the page says its data is stale, and claims no outage.
    html = wait_for(lambda: (text := page(web)) and STALE in text and text, timeout=60, what="the stale notice")
    assert "Last known" in html  # the banner does not claim health it has not measured
    figure("broker down → stale notice on the page", time.monotonic() - broker_killed)

    processes.redis(port)  # back, empty (nothing was saved), on the same address
    back = timezone.now()
    back_at = time.monotonic()
    wait_for(lambda: Run.objects.filter(probe=probe, started_at__gt=back).count() >= 2, timeout=90,
             what="runs after the broker came back")
    figure("broker back → runs resumed (2 runs)", time.monotonic() - back_at)
    wait_for(lambda: STALE not in page(web), timeout=30, what="fresh data on the page again")
    figure("broker back → fresh page", time.monotonic() - back_at)

    assert worker.poll() is None and beat.poll() is None  # they reconnected; nobody restarted them
    assert not Run.objects.exclude(outcome=Outcome.SUCCESS).exists()
    assert Incident.objects.count() == 0
    assert not ComponentStatusChange.objects.filter(new_status__in=OUTAGES).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_holding_a_message_acknowledged_late_lives_through_the_broker_going_away(
        processes, tmp_path, redis_server_installed):  # noqa: F811
    """Every run is acknowledged late: Redis going away while a worker holds one made kombu's
    closing of the lost connection crash the worker for good ("Unrecoverable error: AttributeError:
    'NoneType' object has no attribute 'hostname'", vigie/broker_redis.py); in the chaos run a
    location's worker died so, and nothing ran there afterwards."""
    from tests.faults.poison_tasks import hold
    from vigie.celery import app

    redis, port = processes.redis()
    broker = f"redis://127.0.0.1:{port}/0"
    queue = f"held-{uuid.uuid4().hex[:6]}"
    worker = processes.start("worker", [
        sys.executable, "-m", "celery", "-A", "vigie", "worker", "-Q", queue, "--include", "tests.faults.poison_tasks",
        "--pool", "threads", "--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "INFO", "-n", f"held-{uuid.uuid4().hex[:6]}@%h"], processes.env(broker))
    wait_for(lambda: " ready." in processes.log(worker), timeout=90, what="the worker to be ready")

    def send(journal: Path, release: Path) -> None:
        with app.connection_for_write(broker) as connection:
            hold.apply_async(args=[str(journal), str(release)], queue=queue, connection=connection)

    held, release = tmp_path / "held", tmp_path / "release"
    send(held, release)
    wait_for(lambda: held.exists() and "start" in held.read_text(), timeout=30, what="the task to start")

    processes.kill(redis)  # the worker holds the message, not acknowledged yet
    wait_for(lambda: "Connection to broker lost" in processes.log(worker), timeout=30, what="the lost connection")
    time.sleep(2)
    assert "Unrecoverable error" not in processes.log(worker)  # it would stop once the task is done
    release.touch()  # the task finishes while Redis is away: its acknowledgement cannot reach it
    wait_for(lambda: "done" in held.read_text(), timeout=30, what="the held task to finish")

    processes.redis(port)  # back on the same address
    after = tmp_path / "after"
    send(after, release)
    wait_for(lambda: after.exists() and "done" in after.read_text(), timeout=90,
             what="a task sent after the broker came back")
    assert worker.poll() is None
    assert "Unrecoverable error" not in processes.log(worker)
