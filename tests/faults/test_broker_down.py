"""The broker (Redis) goes down and comes back: the public site keeps serving without waiting on
it, a web request that sends a task answers at once, the gap shows as stale data (no incident),
and the worker and beat pick up again by themselves on the same address."""
from __future__ import annotations

import re
import time
import uuid

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
