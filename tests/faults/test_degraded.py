"""Degraded dependencies degrade features, not pages: a real web server (granian, production's)
with its cache's Redis killed, then its broker's, then another with its database unreachable. Every
public page still answers; subscribing and the admin's "retry now" say what is unavailable; on-call
sees which part is down."""
from __future__ import annotations

import re
import uuid

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from detection.simulation import demo_layout
from notifications.models import Channel, Delivery, Event
from probes.models import TaskDelivery
from statuspage.publish import site_publish
from tests.faults.processes import free_port, processes, redis_server_installed  # noqa: F401 (fixtures)

PUBLIC = ["/", "/fr/", "/history", "/api/v2/summary.json", "/api/v2/status.json", "/history.rss"]
PASSWORD = "correct horse battery"


def csrf_token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=30)
    assert page.status_code == 200, (url, page.status_code)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def signed_in(base: str) -> requests.Session:
    session = requests.Session()
    token = csrf_token(session, base + "/admin/login/")
    response = session.post(base + "/admin/login/?next=/admin/", timeout=30, headers={"Referer": base + "/admin/login/"},
                            data={"csrfmiddlewaretoken": token, "username": "oncall", "password": PASSWORD})
    assert response.status_code == 200 and "/admin/logout/" in response.text
    return session


def dependency_state(session: requests.Session, base: str) -> dict[str, str]:
    page = session.get(base + "/oncall/", timeout=30)
    assert page.status_code == 200
    return dict(re.findall(r'<th scope="row">(database|cache|broker)</th>\s*<td[^>]*>(up|down)</td>', page.text))


@pytest.mark.django_db(transaction=True)
def test_with_the_cache_then_the_broker_dead_pages_answer_and_forms_say_what_is_unavailable(
        processes, redis_server_installed):  # noqa: F811
    demo_layout(locations=["atlanta"])
    get_user_model().objects.create_user("oncall", password=PASSWORD, is_staff=True, is_superuser=True)
    channel = Channel.objects.create(name="pager", kind="webhook", url="https://pager.example/")
    delivery = Delivery.objects.create(event=Event.objects.create(key="k", kind="test"), channel=channel,
                                       status=Delivery.Status.FAILED)
    broker, broker_port = processes.redis()
    cache, cache_port = processes.redis()
    web, base = processes.web(broker_url=f"redis://127.0.0.1:{broker_port}/0",
                              VIGIE_CACHE_URL=f"redis://127.0.0.1:{cache_port}/0", VIGIE_PUBLIC_CACHE_SECONDS="30")
    for path in PUBLIC:  # fills the cache while it is there
        assert requests.get(base + path, timeout=30).status_code == 200, path
    session = signed_in(base)
    assert dependency_state(session, base) == {"database": "up", "cache": "up", "broker": "up"}
    subscriber = requests.Session()
    subscribe_token = csrf_token(subscriber, base + "/subscribe/")

    # The cache dies: pages answer uncached; subscribing says it is unavailable.
    processes.kill(cache)
    for path in PUBLIC + ["/subscribe/"]:
        assert requests.get(base + path, timeout=30).status_code == 200, path
    refused = subscriber.post(base + "/subscribe/", timeout=30, headers={"Referer": base + "/subscribe/"},
                              data={"csrfmiddlewaretoken": subscribe_token, "email": "someone@example.org"})
    assert refused.status_code == 503
    assert "Subscriptions are unavailable right now" in refused.text
    assert dependency_state(session, base) == {"database": "up", "cache": "down", "broker": "up"}

    # Then the broker: pages still answer; "retry now" and a dead letter's retry say it is unavailable.
    processes.kill(broker)
    for path in PUBLIC:
        assert requests.get(base + path, timeout=30).status_code == 200, path
    token = csrf_token(session, base + "/admin/notifications/delivery/")
    retried = session.post(base + "/admin/notifications/delivery/", timeout=60,
                           headers={"Referer": base + "/admin/notifications/delivery/"},
                           data={"csrfmiddlewaretoken": token, "action": "retry_now", "_selected_action": delivery.id})
    assert retried.status_code == 200, retried.status_code
    assert "The broker is unavailable" in retried.text
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING  # due: sent once the broker is back

    now = timezone.now()
    letter = TaskDelivery.objects.create(task_id=str(uuid.uuid4()), task_name="notifications.tasks.deliver",
                                         args=[delivery.id], deliveries=4, state=TaskDelivery.State.DEAD,
                                         first_seen_at=now, last_seen_at=now, dead_at=now)
    token = csrf_token(session, base + "/oncall/")
    kept = session.post(base + f"/oncall/dead-letters/{letter.id}/retry", timeout=60, data={"csrfmiddlewaretoken": token},
                        headers={"Referer": base + "/oncall/"})
    assert kept.status_code == 200 and "The broker is unavailable: the dead letter is kept" in kept.text
    assert TaskDelivery.objects.filter(id=letter.id).exists()

    assert dependency_state(session, base) == {"database": "up", "cache": "down", "broker": "down"}
    dashboard = session.get(base + "/oncall/", timeout=30).text
    assert "The cache is down" in dashboard and "The broker is down" in dashboard
    assert "redis://" not in dashboard  # a URL may hold a password: never shown


@pytest.mark.django_db(transaction=True)
def test_with_the_database_unreachable_public_pages_answer_from_the_last_good_copy(processes, tmp_path):  # noqa: F811
    demo_layout(locations=["atlanta"])
    site = tmp_path / "site"
    site_publish(out=site, full=True)
    unreachable = f"postgres://vigie@127.0.0.1:{free_port()}/vigie_{uuid.uuid4().hex[:6]}"
    web, base = processes.web(DATABASE_URL=unreachable, VIGIE_PUBLISH_DIR=str(site))

    for path in PUBLIC:
        response = requests.get(base + path, timeout=30)
        assert response.status_code == 200, path
        assert response.headers["X-Vigie-Fallback"] == "last-good-copy"
    page = requests.get(base + "/", timeout=30)
    assert "Live data is unavailable right now" in page.text and "Posting" in page.text
    assert "Les données en direct" in requests.get(base + "/fr/", timeout=30).text
    assert requests.get(base + "/api/v2/summary.json", timeout=30).json()["page"]
    missing = requests.get(base + "/incidents/nosuchincident", timeout=30)
    assert missing.status_code == 503 and "cannot read its data" in missing.text
    # Someone on call, signed in: reading their session needs the database.
    oncall = requests.get(base + "/oncall/", timeout=30, cookies={"sessionid": "a" * 32}, allow_redirects=False)
    assert oncall.status_code == 503 and "The database is down" in oncall.text
