"""Public subscribers: double opt-in by email, webhooks, per-component, one-click unsubscribe."""
from __future__ import annotations

import re

import pytest
from django.core import mail

from notifications import domain, tasks
from notifications.models import Delivery, Event, Subscriber
from detection import incidents
from detection.models import IncidentStatus
from tests.notifications.conftest import make_incident, verify

LINK = re.compile(r"http://\S+/subscribe/(confirm|unsubscribe)/\w+")


def links_in(text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in LINK.finditer(text)}


def local(url: str) -> str:
    return url.split("127.0.0.1:8000", 1)[1]


def announce_incident(components, title="Posting failing"):
    incident = make_incident(components, title)
    update = incidents.incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, body="Posts fail.",
                                           automatic=True)
    return domain.incident_update_notify(update_id=update.id)


def deliver_all(event: Event) -> None:
    for delivery in event.deliveries.all():
        tasks.deliver(delivery.id)


@pytest.mark.django_db
def test_the_subscribe_form_asks_for_an_email_and_sends_only_a_confirmation(client, components, enqueued,
                                                                            django_capture_on_commit_callbacks):
    page = client.get("/subscribe/")
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content and b"Posting" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/subscribe/", {"email": "Ada@Example.org"})
    assert response.status_code == 200 and b"Check your inbox" in response.content
    subscriber = Subscriber.objects.get()
    assert (subscriber.email, subscriber.confirmed_at) == ("ada@example.org", None)
    assert enqueued == [("confirm", subscriber.id)]

    assert announce_incident(components).deliveries.count() == 0  # unconfirmed: nothing but the confirmation
    tasks.send_confirmation(subscriber.id)
    (email,) = mail.outbox
    assert email.to == ["ada@example.org"]
    assert set(links_in(email.body)) == {"confirm"}
    assert "token" not in str(Subscriber.objects.values().get())  # no token stored in the clear
    assert links_in(email.body)["confirm"].split("/")[-1] not in str(Subscriber.objects.values().get())


@pytest.mark.django_db
def test_the_form_refuses_both_or_neither_address(client, enqueued):
    assert client.post("/subscribe/", {}).status_code == 400
    assert client.post("/subscribe/", {"email": "a@example.org", "url": "https://example.org/h"}).status_code == 400
    assert Subscriber.objects.count() == 0


@pytest.mark.django_db
def test_a_confirmed_subscriber_gets_events_of_their_components_only(client, components, enqueued):
    posting, reading = components
    subscriber = domain.subscriber_subscribe(email="ada@example.org", components=[posting])
    everything = domain.subscriber_subscribe(email="bob@example.org")
    domain.subscriber_send_confirmation(subscriber_id=subscriber.id)
    domain.subscriber_send_confirmation(subscriber_id=everything.id)
    for message in mail.outbox:
        confirm = local(links_in(message.body)["confirm"])
        page = client.get(confirm)
        assert page.status_code == 200 and b"Confirm" in page.content
        assert Subscriber.objects.filter(confirmed_at__isnull=False).count() < 2  # a GET alone confirms nothing
        assert client.post(confirm).status_code == 200
    assert Subscriber.objects.filter(confirmed_at__isnull=False).count() == 2
    mail.outbox.clear()

    reading_event = announce_incident([reading], "Reading failing")
    posting_event = announce_incident([posting], "Posting failing")
    assert list(reading_event.deliveries.values_list("subscriber__email", flat=True)) == ["bob@example.org"]
    assert sorted(posting_event.deliveries.values_list("subscriber__email", flat=True)) == [
        "ada@example.org", "bob@example.org"]
    deliver_all(posting_event)
    ada = next(m for m in mail.outbox if m.to == ["ada@example.org"])
    assert "Posting failing" in ada.subject and "Posts fail." in ada.body
    unsubscribe = links_in(ada.body)["unsubscribe"]
    assert ada.extra_headers["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert ada.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.django_db
def test_the_unsubscribe_link_works_from_the_page_and_by_one_click_post(client, components, enqueued):
    ada = domain.subscriber_subscribe(email="ada@example.org")
    bob = domain.subscriber_subscribe(email="bob@example.org")
    for subscriber in (ada, bob):
        domain.subscriber_confirm(subscriber=subscriber)
    ada_link = local(domain.subscriber_links(subscriber=ada)["unsubscribe"])
    bob_link = local(domain.subscriber_links(subscriber=bob)["unsubscribe"])
    pending = announce_incident(components)

    page = client.get(ada_link)
    assert page.status_code == 200 and b"<button" in page.content
    assert client.post(ada_link).status_code == 200
    # RFC 8058: a mail client's POST, no CSRF token, no cookie.
    csrf_client = client.__class__(enforce_csrf_checks=True)
    assert csrf_client.post(bob_link, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert Subscriber.objects.filter(unsubscribed_at__isnull=True).count() == 0
    assert set(pending.deliveries.values_list("status", flat=True)) == {Delivery.Status.CANCELLED}
    assert announce_incident(components, "Again").deliveries.count() == 0
    assert client.get(ada_link[:-3] + "abc").status_code == 404


@pytest.mark.django_db
def test_a_webhook_subscriber_gets_signed_events_with_an_unsubscribe_url(client, components, receiver, enqueued,
                                                                         settings):
    settings.VIGIE_WEBHOOK_ALLOW_PRIVATE = True
    client.post("/subscribe/", {"url": receiver.url + "/status", "secret": "sub-secret-123456",
                                "components": [components[0].id]})
    subscriber = Subscriber.objects.get()
    assert subscriber.active
    deliver_all(announce_incident(components[:1]))
    (got,) = receiver.requests
    assert verify("sub-secret-123456", got.headers["Vigie-Signature"], got.body)
    assert "/subscribe/unsubscribe/" in got.json()["unsubscribe_url"]


@pytest.mark.django_db
def test_a_webhook_subscriber_may_not_point_at_a_private_address(components, receiver, enqueued):
    domain.subscriber_subscribe(url=receiver.url + "/status")
    event = announce_incident(components)
    deliver_all(event)
    assert receiver.requests == []
    delivery = event.deliveries.get()
    assert delivery.status == Delivery.Status.FAILED and "not a public address" in delivery.last_error
