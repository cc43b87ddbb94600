"""A real Celery worker process, on the configured broker, delivers notifications end to end."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import tasks
from notifications.models import Channel, Delivery, Event
from detection import incidents
from detection.models import IncidentStatus
from tests.notifications.conftest import WEBHOOK_SECRET, make_incident, verify
from tests.probes.test_worker import wait_for, worker_for  # noqa: F401 (a fixture)

QUEUE = "vigie"  # the default queue, where notifications go


@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_a_signed_webhook_and_an_apprise_message_the_receiver_verifies(receiver, components,
                                                                                         worker_for):  # noqa: F811
    port = receiver.url.rsplit(":", 1)[1]
    Channel.objects.create(name="hook", kind=Channel.Kind.WEBHOOK, url=receiver.url + "/hook", secret=WEBHOOK_SECRET)
    Channel.objects.create(name="chat", kind=Channel.Kind.APPRISE, url=f"json://127.0.0.1:{port}/apprise")
    worker_for([QUEUE])
    incident = make_incident(components[:1])
    incidents.incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, body="Posts fail.",
                                  automatic=True)  # commits: the event is made and its deliveries enqueued

    got = {r.path: r for r in receiver.wait(2, timeout=60)}
    assert verify(WEBHOOK_SECRET, got["/hook"].headers["Vigie-Signature"], got["/hook"].body)
    assert got["/hook"].json()["type"] == "incident.opened"
    assert got["/apprise"].json()["title"] == "[investigating] Posting failing"
    wait_for(lambda: Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 2)
    time.sleep(1.0)  # a duplicate, if any, would arrive now
    assert len(receiver.requests) == 2


@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_mid_delivery_and_retrying_sends_nothing_twice(receiver, components,
                                                                          worker_for):  # noqa: F811
    receiver.delay_s = 5.0  # the worker is killed while the receiver holds the request
    Channel.objects.create(name="hook", kind=Channel.Kind.WEBHOOK, url=receiver.url, secret=WEBHOOK_SECRET)
    first = worker_for([QUEUE])
    incident = make_incident(components)
    incidents.incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, body="x", automatic=True)
    receiver.wait(1, timeout=60)
    first.kill()
    first.wait(10)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.SENDING

    # Redelivered at once, the task finds the delivery claimed by a sender not yet presumed dead.
    receiver.delay_s = 0.0
    worker_for([QUEUE])
    tasks.deliver.delay(delivery.id)
    time.sleep(2.0)
    assert len(receiver.requests) == 1
    # Once the claim has expired (time the worker process cannot be made to travel), a retry sends.
    Delivery.objects.filter(id=delivery.id).update(claimed_until=timezone.now() - timedelta(seconds=1))
    tasks.deliver_due.delay()
    tasks.deliver.delay(delivery.id)
    wait_for(lambda: Delivery.objects.filter(id=delivery.id, status=Delivery.Status.DELIVERED).exists())
    tasks.deliver.delay(delivery.id)
    time.sleep(2.0)

    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert Event.objects.count() == 1
    # The killed attempt reached the receiver before the kill; the retry carries the same
    # idempotency key, so the receiver acts on the event once.
    assert [r.headers["Vigie-Delivery"] for r in receiver.requests] == [str(delivery.id)] * 2
    assert all(verify(WEBHOOK_SECRET, r.headers["Vigie-Signature"], r.body) for r in receiver.requests)
    assert list(receiver.processed) == [str(delivery.id)]
