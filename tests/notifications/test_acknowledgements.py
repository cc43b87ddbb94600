"""On-call hears once when the platform leaves an incident unacknowledged past its source's
threshold, and once when it acknowledges it; a real webhook receiver gets both."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications import tasks
from notifications.acknowledgements import acknowledgements_notify
from notifications.models import Delivery, Event, EventKind
from official.models import IncidentAcknowledgement
from tests.statuspage.official_rows import (
    ack_make, incident_make, official_incident_make, platform_make, source_make,
)


@pytest.fixture
def silent(db):
    """An open incident 20 min old; the platform's threshold is 15 min; nothing acknowledged."""
    now = timezone.now()
    platform = platform_make()
    source = source_make(platform, unacknowledged_after_s=900)
    incident = incident_make(platform, started_at=now - timedelta(minutes=20))
    return {"now": now, "source": source, "incident": incident, "ack": ack_make(incident, source)}


def test_an_incident_past_the_threshold_is_told_once(silent, webhook_channel, enqueued,
                                                     django_capture_on_commit_callbacks):
    now = silent["now"]
    with django_capture_on_commit_callbacks(execute=True):
        assert acknowledgements_notify(now=now) == 1
        assert acknowledgements_notify(now=now + timedelta(seconds=30)) == 0
    event = Event.objects.get()
    assert event.kind == EventKind.INCIDENT_UNACKNOWLEDGED
    assert event.key == f"incident-unacknowledged:{silent['incident'].public_id}"
    assert event.payload["body"] == ("Chirp has not acknowledged this incident on its own status page 20 min after "
                                     "the measured start (threshold 15 min).")
    assert len(enqueued) == 1 == Delivery.objects.count()
    silent["ack"].refresh_from_db()
    assert silent["ack"].unacknowledged_notified_at == now


def test_before_the_threshold_nothing_is_told(silent, webhook_channel, enqueued):
    assert acknowledgements_notify(now=silent["now"] - timedelta(minutes=6)) == 0
    assert not Event.objects.exists()


def test_a_resolved_incident_is_never_told_unacknowledged(silent, webhook_channel, enqueued):
    type(silent["incident"]).objects.filter(id=silent["incident"].id).update(resolved_at=silent["now"])
    assert acknowledgements_notify(now=silent["now"]) == 0


def test_the_acknowledgement_is_told_once_with_the_official_incident(silent, webhook_channel, enqueued,
                                                                      django_capture_on_commit_callbacks):
    now = silent["now"]
    with django_capture_on_commit_callbacks(execute=True):
        acknowledgements_notify(now=now)
    official = official_incident_make(silent["source"], seen_at=now + timedelta(minutes=3))
    IncidentAcknowledgement.objects.filter(id=silent["ack"].id).update(
        official_incident=official, acknowledged_at=now + timedelta(minutes=3), seen_at=now + timedelta(minutes=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert acknowledgements_notify(now=now + timedelta(minutes=4)) == 1
        assert acknowledgements_notify(now=now + timedelta(minutes=5)) == 0
    event = Event.objects.get(kind=EventKind.INCIDENT_ACKNOWLEDGED)
    assert event.payload["body"] == ("Chirp acknowledged this incident 23 min after the measured start. Official "
                                     "incident: Elevated error rates (https://status.chirp.example/incidents/abc).")
    assert Event.objects.count() == 2


def test_the_beat_task_runs_the_check(silent, webhook_channel, enqueued):
    assert tasks.acknowledgements_check() == 1


@pytest.mark.postgres  # SQLite serializes writers: no race to have
@pytest.mark.django_db(transaction=True)
def test_racing_checkers_make_one_event(webhook_channel, enqueued):
    now = timezone.now()
    platform = platform_make()
    source = source_make(platform, unacknowledged_after_s=60)
    ack_make(incident_make(platform, started_at=now - timedelta(minutes=5)), source)
    barrier = threading.Barrier(4)
    counts = []

    def check():
        barrier.wait()
        counts.append(acknowledgements_notify(now=now))
        connection.close()

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == [0, 0, 0, 1] and Event.objects.count() == 1


def test_the_webhook_receiver_gets_the_unacknowledged_event(silent, receiver, webhook_channel, enqueued):
    acknowledgements_notify(now=silent["now"])
    delivery = Delivery.objects.get()
    assert tasks.deliver(delivery.id) == Delivery.Status.DELIVERED
    (got,) = receiver.requests
    assert got.json()["type"] == "incident.unacknowledged"
    assert got.json()["data"]["title"] == "Posting failing"
    assert got.json()["data"]["url"].endswith(f"/incidents/{silent['incident'].public_id}")


def test_a_channel_that_did_not_ask_for_these_kinds_hears_nothing(silent, enqueued):
    from notifications.models import Channel

    Channel.objects.create(name="Incidents only", kind=Channel.Kind.WEBHOOK, url="http://127.0.0.1:9/h",
                           secret="whsec-0123456789abcdef", event_kinds=["incident.opened"])
    acknowledgements_notify(now=silent["now"])
    assert Event.objects.count() == 1 and not Delivery.objects.exists()
