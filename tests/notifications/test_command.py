"""manage.py notify: add a channel, list channels, send a test message."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from notifications.models import Channel, Delivery
from tests.notifications.conftest import verify


def run(*args) -> str:
    out = StringIO()
    call_command("notify", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_webhook_channel_added_from_the_command_line_gets_a_signed_test_message(receiver):
    out = run("add", "On-call", "webhook", receiver.url + "/hook", "--events", "incident.opened,problem.opened")
    channel = Channel.objects.get()
    assert channel.secret in out and channel.event_kinds == ["incident.opened", "problem.opened"]
    assert "On-call" in run("list") and receiver.url not in run("list")
    assert "Delivered." in run("test", "On-call")
    (got,) = receiver.requests
    assert verify(channel.secret, got.headers["Vigie-Signature"], got.body)
    assert got.json()["type"] == "test"


@pytest.mark.django_db
def test_a_failing_test_message_says_why_and_is_not_retried_later(receiver):
    receiver.status = 503
    run("add", "Chat", "apprise", f"json://127.0.0.1:{receiver.url.rsplit(':', 1)[1]}/")
    with pytest.raises(CommandError, match="Not delivered: Apprise could not send"):
        run("test", "Chat")
    assert Delivery.objects.get().status == Delivery.Status.FAILED
    with pytest.raises(CommandError, match="Unknown event kinds: incident.open"):
        run("add", "x", "webhook", "http://127.0.0.1:9/", "--events", "incident.open")
