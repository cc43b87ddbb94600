"""The dashboard's "Vigie's own faults": dependencies, dead letters, dropped runs, dispatch lateness."""
from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import RequestFactory
from django.http import HttpResponse
from django.utils import timezone

from detection.simulation import demo_layout
from probes import drops
from probes.models import DropReason, ProbeLocation, TaskDelivery
from statuspage.fallback import LastGoodCopyMiddleware


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("oncall", password="correct horse battery",
                                                             is_staff=True))
    return client


@pytest.mark.django_db
def test_the_dashboard_shows_dependencies_dead_letters_drops_and_lateness(staff_client):
    demo_layout(locations=["atlanta"])
    placement = ProbeLocation.objects.select_related("probe", "location").first()
    now = timezone.now()
    drops.runs_dropped_add([(placement.probe_id, placement.location_id, DropReason.SKIPPED, now, 7)])
    drops.lateness_add([SimpleNamespace(location_id=placement.location_id, scheduled_for=now,
                                        started_at=now + timedelta(milliseconds=80 if i < 97 else 20_000))
                        for i in range(100)])
    letter = TaskDelivery.objects.create(task_id=str(uuid.uuid4()), task_name="probes.tasks.run_batch",
                                         deliveries=4, state=TaskDelivery.State.DEAD, last_error="RuntimeError: boom",
                                         first_seen_at=now, last_seen_at=now, dead_at=now)
    page = staff_client.get("/oncall/").content.decode()
    for words in ("<th scope=\"row\">database</th>", "<th scope=\"row\">cache</th>", "<th scope=\"row\">broker</th>",
                  "p50 ≤ 100 ms, p99 ≤ 30 s", f"<td>{placement.probe.slug}</td><td>atlanta</td><td>skipped</td><td>7</td>",
                  letter.task_id, "RuntimeError: boom", f"/oncall/dead-letters/{letter.id}/retry"):
        assert words in page, words
    assert "down</td>" not in page

    response = staff_client.post(f"/oncall/dead-letters/{letter.id}/discard", follow=True)
    assert "Dead letter discarded." in response.content.decode()
    assert not TaskDelivery.objects.exists()
    assert staff_client.post(f"/oncall/dead-letters/{letter.id}/retry").status_code == 404


@pytest.mark.django_db
def test_dead_letters_are_acted_on_by_staff_only(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader", password="correct horse battery"))
    now = timezone.now()
    letter = TaskDelivery.objects.create(task_id="t", task_name="x", state=TaskDelivery.State.DEAD,
                                         first_seen_at=now, last_seen_at=now)
    assert client.post(f"/oncall/dead-letters/{letter.id}/discard").status_code == 403
    assert TaskDelivery.objects.exists()


@pytest.mark.django_db
def test_an_error_with_the_database_up_stays_an_error():
    """The last good copy stands in for a database that is down, never for a bug."""
    middleware = LastGoodCopyMiddleware(lambda request: HttpResponse("boom", status=500))
    assert middleware(RequestFactory().get("/")).status_code == 500
