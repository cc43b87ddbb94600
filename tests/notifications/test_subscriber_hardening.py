"""Public subscriptions and emails (issue 17, findings 10 and 11): a newline in an incident title
does not make email delivery raise and retry; a webhook to a refused address is refused at
subscribe time; a subscriber whose deliveries keep failing for good is disabled."""
from __future__ import annotations

import pytest
from django.core import mail

from notifications import domain, tasks
from notifications.models import Delivery, Subscriber
from notifications.transports import header_value
from tests.notifications.test_subscribers import announce_incident, deliver_all


@pytest.fixture
def confirmed_email(db):
    subscriber = domain.subscriber_subscribe(email="ada@example.org")
    domain.subscriber_confirm(subscriber=subscriber)
    return subscriber


@pytest.mark.django_db
def test_a_newline_in_an_incident_title_is_delivered_on_one_header_line(components, enqueued, confirmed_email):
    mail.outbox.clear()
    event = announce_incident(components, title="Posting failing\r\nBcc: victim@example.org\x0b")
    deliver_all(event)
    delivery = event.deliveries.get()
    assert delivery.status == Delivery.Status.DELIVERED, delivery.last_error
    (message,) = mail.outbox
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.subject == "[investigating] Posting failing Bcc: victim@example.org"
    assert message.bcc == [] and "victim@example.org" not in message.recipients()


def test_header_values_are_one_line_without_control_characters():
    assert header_value("a\nb\r\nc\x00d\u2028e\te") == "a b cd e e"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://10.1.2.3/hook", "http://[::1]/hook", "http://localhost/hook"])
def test_a_webhook_to_a_refused_address_is_refused_at_subscribe_time(client, enqueued, url):
    response = client.post("/subscribe/", {"url": url})
    assert response.status_code == 400  # the form again, with the reason
    assert b"does not send to" in response.content
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_the_allowance_for_private_webhooks_still_applies(client, enqueued, settings):
    settings.VIGIE_WEBHOOK_ALLOW_PRIVATE = True
    client.post("/subscribe/", {"url": "http://127.0.0.1:8080/hook"})
    assert Subscriber.objects.get().active


@pytest.mark.django_db
def test_a_subscriber_failing_for_good_n_times_in_a_row_is_disabled(components, receiver, enqueued, settings):
    settings.VIGIE_SUBSCRIBER_MAX_FAILURES = 3
    subscriber = domain.subscriber_subscribe(url=receiver.url + "/status")  # refused by the guard at send time
    for i in range(2):
        deliver_all(announce_incident(components, title=f"Incident {i}"))
    assert Subscriber.objects.get(id=subscriber.id).active
    deliver_all(announce_incident(components, title="Incident 3"))
    assert not Subscriber.objects.get(id=subscriber.id).active
    assert announce_incident(components, title="Incident 4").deliveries.count() == 0
    assert receiver.requests == []


@pytest.mark.django_db
def test_a_success_in_between_resets_the_count(components, receiver, enqueued, settings):
    settings.VIGIE_SUBSCRIBER_MAX_FAILURES = 2
    subscriber = domain.subscriber_subscribe(url=receiver.url + "/status")
    deliver_all(announce_incident(components, title="Fails"))
    settings.VIGIE_WEBHOOK_ALLOW_PRIVATE = True
    deliver_all(announce_incident(components, title="Works"))
    settings.VIGIE_WEBHOOK_ALLOW_PRIVATE = False
    deliver_all(announce_incident(components, title="Fails again"))
    assert Subscriber.objects.get(id=subscriber.id).active
