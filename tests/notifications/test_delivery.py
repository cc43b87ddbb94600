"""Deliveries are claimed once, sent signed, retried with backoff, and never leak a secret."""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from notifications import domain, tasks
from notifications.models import Channel, Delivery, Event, EventKind
from notifications.transports import transport_for
from tests.notifications.conftest import WEBHOOK_SECRET, verify

PAYLOAD = {"title": "Posting failing", "status": "investigating", "body": "Posts fail with HTTP 503.",
           "url": "http://127.0.0.1:8000/incidents/abc", "components": [], "occurred_at": "2026-01-01T00:00:00+00:00"}


def make_event(key: str = "incident-update:test1") -> Event:
    return domain.event_record(key=key, kind=EventKind.INCIDENT_OPENED, payload=PAYLOAD)


@pytest.mark.django_db
def test_a_webhook_is_signed_and_carries_its_idempotency_key(receiver, webhook_channel, enqueued):
    event = make_event()
    delivery = event.deliveries.get()
    assert tasks.deliver(delivery.id) == Delivery.Status.DELIVERED
    (got,) = receiver.requests
    assert verify(WEBHOOK_SECRET, got.headers["Vigie-Signature"], got.body)
    assert not verify("another-secret", got.headers["Vigie-Signature"], got.body)
    assert not verify(WEBHOOK_SECRET, got.headers["Vigie-Signature"], got.body + b" ")
    assert got.headers["Vigie-Delivery"] == str(delivery.id)
    assert got.headers["Vigie-Event"] == event.key
    assert got.json()["type"] == "incident.opened" and got.json()["data"]["title"] == "Posting failing"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (Delivery.Status.DELIVERED, 1, "")
    assert delivery.delivered_at is not None


@pytest.mark.django_db
def test_running_the_deliver_task_twice_sends_once(receiver, webhook_channel, enqueued):
    delivery = make_event().deliveries.get()
    assert tasks.deliver(delivery.id) == Delivery.Status.DELIVERED
    assert tasks.deliver(delivery.id) == "skipped"
    assert tasks.deliver_due() == 0
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_two_threads_delivering_at_once_send_once(receiver, enqueued):
    receiver.delay_s = 0.5
    Channel.objects.create(name="hook", kind=Channel.Kind.WEBHOOK, url=receiver.url, secret=WEBHOOK_SECRET)
    delivery = make_event().deliveries.get()
    results, barrier = [], threading.Barrier(2)

    def deliver():
        barrier.wait()
        try:
            results.append(tasks.deliver(delivery.id))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [Delivery.Status.DELIVERED, "skipped"]
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_a_receiver_answering_500_is_retried_with_backoff_and_the_row_keeps_the_error(receiver, webhook_channel,
                                                                                       enqueued):
    receiver.status = 500
    with time_machine.travel("2026-03-01 12:00:00Z", tick=False) as clock:
        delivery = make_event().deliveries.get()
        assert tasks.deliver(delivery.id) == Delivery.Status.PENDING
        delivery.refresh_from_db()
        assert delivery.attempts == 1
        assert delivery.last_error.startswith("HTTP 500")
        assert delivery.next_attempt_at == timezone.now() + timedelta(seconds=30)
        assert domain.deliveries_due() == []  # not yet
        clock.shift(timedelta(seconds=30))
        assert domain.deliveries_due() == [delivery.id]
        assert tasks.deliver(delivery.id) == Delivery.Status.PENDING
        delivery.refresh_from_db()
        assert delivery.attempts == 2
        assert delivery.next_attempt_at == timezone.now() + timedelta(seconds=60)
        receiver.status = 200
        clock.shift(timedelta(seconds=60))
        assert tasks.deliver(delivery.id) == Delivery.Status.DELIVERED
    assert len(receiver.requests) == 3
    assert len(receiver.processed) == 1


@pytest.mark.django_db
def test_a_delivery_fails_for_good_after_the_last_attempt_or_a_permanent_refusal(receiver, webhook_channel, enqueued):
    receiver.status = 500
    delivery = make_event().deliveries.get()
    Delivery.objects.filter(id=delivery.id).update(attempts=domain.MAX_ATTEMPTS - 1)
    assert tasks.deliver(delivery.id) == Delivery.Status.FAILED
    receiver.status = 410
    gone = make_event("incident-update:test2").deliveries.get()
    assert tasks.deliver(gone.id) == Delivery.Status.FAILED
    gone.refresh_from_db()
    assert gone.attempts == 1 and gone.last_error.startswith("HTTP 410")


@pytest.mark.django_db
def test_a_delivery_whose_sender_died_is_sent_again_only_after_its_claim_expires(receiver, webhook_channel, enqueued):
    delivery = make_event().deliveries.get()
    now = timezone.now()
    assert domain.delivery_claim(delivery_id=delivery.id, now=now)  # a sender that then dies
    assert tasks.deliver(delivery.id) == "skipped"
    assert domain.deliveries_due(now=now + domain.CLAIM - timedelta(seconds=1)) == []
    with time_machine.travel(now + domain.CLAIM + timedelta(seconds=1)):
        assert domain.deliveries_due() == [delivery.id]
        assert tasks.deliver(delivery.id) == Delivery.Status.DELIVERED
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_an_apprise_json_url_reaches_a_local_receiver(receiver, enqueued):
    port = receiver.url.rsplit(":", 1)[1]
    Channel.objects.create(name="Chat", kind=Channel.Kind.APPRISE, url=f"json://127.0.0.1:{port}/apprise")
    delivery = make_event().deliveries.get()
    assert tasks.deliver(delivery.id) == Delivery.Status.DELIVERED
    (got,) = receiver.requests
    assert got.path == "/apprise"
    assert got.json()["title"] == "[investigating] Posting failing"
    assert "Posts fail with HTTP 503." in got.json()["message"]
    assert PAYLOAD["url"] in got.json()["message"]


@pytest.mark.django_db
def test_secrets_never_appear_in_errors_logs_or_payloads(receiver, enqueued, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.status, receiver.echo = 500, True
    port = receiver.url.rsplit(":", 1)[1]
    apprise_token = "AppriseT0kenXyZ123"
    hook_token = "HookQueryT0ken987"
    chat = Channel.objects.create(name="Chat", kind=Channel.Kind.APPRISE,
                                  url=f"json://vigie:{apprise_token}@127.0.0.1:{port}/{apprise_token}")
    hook = Channel.objects.create(name="Hook", kind=Channel.Kind.WEBHOOK, secret=WEBHOOK_SECRET,
                                  url=f"{receiver.url}/hook?token={hook_token}")
    event = make_event()
    for delivery in event.deliveries.all():
        assert tasks.deliver(delivery.id) == Delivery.Status.PENDING
    assert len(receiver.requests) == 2
    assert any(hook_token in r.path for r in receiver.requests)  # it was there to leak
    errors = " ".join(Delivery.objects.values_list("last_error", flat=True))
    assert "HTTP 500" in errors
    stored = connection.cursor()
    stored.execute("SELECT url, secret FROM notifications_channel")
    at_rest = " ".join(" ".join(row) for row in stored.fetchall())
    for secret in (apprise_token, hook_token, WEBHOOK_SECRET):
        assert secret not in errors
        assert secret not in caplog.text
        assert secret not in str(event.payload)
        assert secret not in at_rest
    assert {chat.url, hook.url} == set(Channel.objects.values_list("url", flat=True))


def test_an_unknown_transport_kind_suggests_the_nearest():
    with pytest.raises(ValueError, match="Did you mean 'webhook'"):
        transport_for("webhok")


@pytest.mark.django_db
def test_an_apprise_url_to_a_private_address_is_refused_at_connect_unless_allowed(receiver, enqueued, settings):
    """Apprise makes its own requests calls; they go through the SSRF guard all the same."""
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = []
    port = receiver.url.rsplit(":", 1)[1]
    Channel.objects.create(name="Chat", kind=Channel.Kind.APPRISE, url=f"json://127.0.0.1:{port}/apprise")
    delivery = make_event().deliveries.get()
    assert tasks.deliver(delivery.id) == Delivery.Status.FAILED  # permanent: asking again changes nothing
    delivery.refresh_from_db()
    assert "SSRF guard" in delivery.last_error and "loopback" in delivery.last_error
    assert receiver.requests == []
    # Other code in the process is not affected by the guard Apprise ran under.
    import requests

    assert requests.post(receiver.url + "/plain", data=b"x", timeout=5).status_code == 200
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = ["loopback"]
    again = make_event("incident-update:test2").deliveries.get()
    assert tasks.deliver(again.id) == Delivery.Status.DELIVERED


@pytest.fixture
def dripping_receiver():
    """Accepts a webhook, then sends its answer one byte every 0.2 s, forever."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Pad: " + b"a" * 10_000:
                        if stop.is_set():
                            break
                        conn.sendall(bytes([byte]))
                        time.sleep(0.2)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


@pytest.mark.django_db
def test_a_receiver_dripping_its_answer_is_cut_at_the_total_deadline(dripping_receiver, enqueued, monkeypatch):
    """Each byte arrives well within the socket timeout, so only a total deadline ends the wait."""
    from notifications import transports

    monkeypatch.setattr(transports, "DEADLINE_S", 1.5)
    Channel.objects.create(name="Slow", kind=Channel.Kind.WEBHOOK, url=dripping_receiver + "/hook")
    delivery = make_event().deliveries.get()
    began = time.monotonic()
    assert tasks.deliver(delivery.id) == Delivery.Status.PENDING  # retried later, not lost
    took = time.monotonic() - began
    delivery.refresh_from_db()
    assert "total deadline" in delivery.last_error, delivery.last_error
    assert took < transports.TIMEOUT_S, took  # well before the socket timeout could have fired
