"""Events are made once from what probes announce, with one delivery per channel."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import domain
from notifications.models import Channel, Delivery, Event, EventKind
from detection import evaluation, incidents
from detection.events import incident_updated
from detection.models import IncidentStatus, Maintenance, OwnProblem
from tests.notifications.conftest import make_incident


@pytest.mark.django_db
def test_an_incident_opened_updated_and_resolved_makes_one_event_each_and_one_delivery_per_channel(
        components, webhook_channel, enqueued, django_capture_on_commit_callbacks):
    chat = Channel.objects.create(name="Chat", kind=Channel.Kind.APPRISE, url="json://127.0.0.1:9/")
    incident = make_incident(components[:1])
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, body="Posts fail.",
                                      automatic=True)
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_set_status(incident=incident, status=IncidentStatus.IDENTIFIED, body="Found it.")
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_set_status(incident=incident, status=IncidentStatus.RESOLVED, body="Fixed.")

    assert list(Event.objects.order_by("id").values_list("kind", flat=True)) == [
        EventKind.INCIDENT_OPENED, EventKind.INCIDENT_UPDATED, EventKind.INCIDENT_RESOLVED]
    for event in Event.objects.all():
        assert sorted(event.deliveries.values_list("channel__name", flat=True)) == sorted([chat.name,
                                                                                            webhook_channel.name])
    assert sorted(enqueued) == sorted(Delivery.objects.values_list("id", flat=True))
    opened = Event.objects.get(kind=EventKind.INCIDENT_OPENED)
    assert opened.payload["title"] == "Posting failing"
    assert opened.payload["url"].endswith(f"/incidents/{incident.public_id}")
    assert [c["name"] for c in opened.payload["components"]] == ["Posting"]


@pytest.mark.django_db
def test_announcing_the_same_update_twice_makes_one_event(components, webhook_channel, enqueued):
    incident = make_incident(components)
    update = incidents.incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, body="x",
                                           automatic=False)
    for _ in range(2):
        incident_updated.send(sender=None, update_id=update.id)
    assert Event.objects.count() == 1
    assert Delivery.objects.count() == 1
    assert domain.incident_update_notify(update_id=update.id) is None


@pytest.mark.django_db
def test_a_channel_hears_only_the_kinds_it_asked_for(components, enqueued):
    Channel.objects.create(name="Resolutions", kind=Channel.Kind.WEBHOOK, url="http://127.0.0.1:9/",
                           event_kinds=[EventKind.INCIDENT_RESOLVED])
    Channel.objects.create(name="Off", kind=Channel.Kind.WEBHOOK, url="http://127.0.0.1:9/", enabled=False)
    incident = make_incident(components)
    first = incidents.incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, body="x",
                                          automatic=False)
    last = incidents.incident_set_status(incident=incident, status=IncidentStatus.RESOLVED, body="y")
    domain.incident_update_notify(update_id=first.id)
    domain.incident_update_notify(update_id=last.id)
    assert list(Delivery.objects.values_list("event__kind", "channel__name")) == [
        (EventKind.INCIDENT_RESOLVED, "Resolutions")]


@pytest.mark.django_db
def test_the_watchdog_announces_a_maintenance_start_and_end_once(components, webhook_channel, enqueued,
                                                                 django_capture_on_commit_callbacks):
    now = timezone.now()
    maintenance = Maintenance.objects.create(title="Database upgrade", scheduled_for=now - timedelta(minutes=1),
                                             scheduled_until=now + timedelta(minutes=30))
    maintenance.components.set(components)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            evaluation.watchdog(now)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.watchdog(now + timedelta(minutes=31))
    events = list(Event.objects.order_by("id"))
    assert [(e.key, e.kind) for e in events] == [
        (f"maintenance:{maintenance.public_id}:started", EventKind.MAINTENANCE_STARTED),
        (f"maintenance:{maintenance.public_id}:ended", EventKind.MAINTENANCE_ENDED)]
    assert Delivery.objects.count() == 2


@pytest.mark.django_db
def test_vigies_own_problems_are_told_to_on_call_once_when_opened_and_resolved(webhook_channel, enqueued,
                                                                              django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        problem = evaluation.problem_open(OwnProblem.Kind.STALE_LOCATION, "atlanta", "no run from atlanta")
        evaluation.problem_open(OwnProblem.Kind.STALE_LOCATION, "atlanta", "no run from atlanta")
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.watchdog()  # the sweep announces recent problems again: still one event
        evaluation.problem_resolve(OwnProblem.Kind.STALE_LOCATION, "atlanta")
    assert list(Event.objects.order_by("id").values_list("key", "kind")) == [
        (f"problem:{problem.id}:opened", EventKind.PROBLEM_OPENED),
        (f"problem:{problem.id}:resolved", EventKind.PROBLEM_RESOLVED)]
    assert Event.objects.get(kind=EventKind.PROBLEM_OPENED).payload["body"] == "no run from atlanta"
