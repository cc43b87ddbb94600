"""Fixtures for notifications: a real local HTTP receiver, channels, an incident to talk about."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from notifications import tasks
from notifications.models import Channel
from detection.models import Component, Incident

WEBHOOK_SECRET = "whsec-test-5a1f0c9e7b2d4e68"


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """The receiver's side of docs/webhooks.md, as a subscriber would write it."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp, given = int(parts["t"]), parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request on arrival, then waits `delay_s` and answers `status`. Like a careful
    receiver, it processes each Vigie-Delivery once (`processed`)."""

    url: str = ""
    status: int = 200
    delay_s: float = 0.0
    echo: bool = False
    requests: list[Received] = field(default_factory=list)
    processed: dict[str, Received] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"receiver got {len(self.requests)} requests, expected {count}")


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got = Received(self.path, dict(self.headers), body)
            with state.lock:
                state.requests.append(got)
            time.sleep(state.delay_s)
            if 200 <= state.status < 300:
                with state.lock:
                    state.processed.setdefault(got.headers.get("Vigie-Delivery", str(len(state.requests))), got)
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(self.path.encode() if state.echo else b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def enqueued(monkeypatch):
    """Deliveries enqueued after commit, recorded instead of sent to the broker."""
    ids: list[int] = []
    monkeypatch.setattr(tasks.deliver, "delay", lambda delivery_id: ids.append(delivery_id))
    monkeypatch.setattr(tasks.send_confirmation, "delay", lambda subscriber_id: ids.append(("confirm", subscriber_id)))
    return ids


@pytest.fixture
def webhook_channel(db, receiver):
    return Channel.objects.create(name="On-call hook", kind=Channel.Kind.WEBHOOK, url=receiver.url + "/hook",
                                  secret=WEBHOOK_SECRET)


@pytest.fixture
def components(db):
    return [Component.objects.create(name="Posting", position=1), Component.objects.create(name="Reading", position=2)]


def make_incident(components: list[Component], title: str = "Posting failing") -> Incident:
    now = timezone.now()
    incident = Incident.objects.create(title=title, started_at=now, detected_at=now)
    for component in components:
        incident.incidentcomponent_set.create(component=component, worst_status="major_outage",
                                              last_status="major_outage")
    return incident
