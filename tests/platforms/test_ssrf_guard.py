"""The SSRF guard: probes and webhooks connect only to public addresses, checked on the socket opened."""
from __future__ import annotations

import socket
import socketserver
import threading
import time
import uuid

import pytest
from django.utils import timezone

from notifications import domain
from notifications.models import Channel, Delivery, EventKind
from notifications.transports import TransportError, WebhookTransport
from platforms.errors import ProbeError
from platforms.http import HttpSeam
from probes.models import Account, FailureClass, Outcome, Platform, ProbeLocation
from platforms.netguard import parse_allowance, refusal
from probes.runner import run_execute
from tests.conftest import make_probe
from tests.vigie.test_settings import start

PUBLIC = "93.184.215.14"


class Counting(socketserver.ThreadingTCPServer):
    """Answers 200 with a JSON list to anything, and counts the connections that reached it."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CountingHandler)
        self.connections = 0
        self.port = self.server_address[1]


class CountingHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.connections += 1
        request = b""
        while b"\r\n\r\n" not in request:
            data = self.request.recv(4096)
            if not data:
                return
            request += data
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n[]")


@pytest.fixture
def local():
    server = Counting()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_allowance(settings):
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = []


def seam() -> HttpSeam:
    return HttpSeam(user_agent="Vigie/test", deadline=time.monotonic() + 5, max_bytes=100_000)


def fake_dns(monkeypatch, *answers: list[str]):
    """getaddrinfo answers each call with the next list of addresses (the last one repeats)."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def getaddrinfo(host, port, family=0, kind=0, proto=0, flags=0):
        if not str(host).endswith(".test"):
            return real(host, port, family, kind, proto, flags)
        addresses = answers[min(len(calls), len(answers) - 1)]
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


# --- what is refused -----------------------------------------------------------------------------
@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"), ("192.168.1.20", "private"),
    ("172.16.5.4", "private"), ("fd12::1", "private"), ("169.254.169.254", "link-local: the cloud metadata service"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("::ffff:127.0.0.1", "loopback"),
    ("100.64.0.1", "reserved"), ("64:ff9b::a00:1", "private"),
])
def test_non_public_addresses_are_refused_with_a_reason(address, reason):
    assert refusal(address) == reason


@pytest.mark.parametrize("address", [PUBLIC, "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert refusal(address) is None


def test_the_allowance_opens_only_what_it_names():
    loopback = parse_allowance(["loopback"])
    assert refusal("127.0.0.1", loopback) is None and refusal("::1", loopback) is None
    assert refusal("10.0.0.1", loopback) == "private"
    lan = parse_allowance(["10.1.0.0/16"])
    assert refusal("10.1.2.3", lan) is None and refusal("10.2.0.1", lan) == "private"
    # An IPv4 network never matches an IPv6 address that happens to share its bits.
    assert refusal("fd00::a00:1", parse_allowance(["10.0.0.0/8"])) == "private"
    # IPv4 embedded in IPv6 is judged as the IPv4 address it reaches.
    assert refusal("::7f00:1") == "loopback" and refusal("64:ff9b::a9fe:a9fe").startswith("link-local")


@pytest.mark.parametrize("value", ["loopback,10.0.0.0/33", "localhost", "10.0.0.0/8;fd00::/8"])
def test_a_wrong_allowance_stops_start_up_naming_the_variable(value, tmp_path):
    result = start({"VIGIE_ALLOW_PRIVATE_TARGETS": value}, tmp_path)
    assert result.returncode != 0
    assert "VIGIE_ALLOW_PRIVATE_TARGETS" in result.stderr and "is neither a CIDR" in result.stderr


# --- probes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("host, named", [
    ("127.0.0.1", "127.0.0.1 is not a public address (loopback)"),
    ("10.0.0.1", "10.0.0.1 is not a public address (private)"),
    ("169.254.169.254", "169.254.169.254 is not a public address (link-local: the cloud metadata service)"),
    ("localhost", "localhost resolves to "),
])
def test_a_probe_to_a_private_target_is_refused_naming_the_address(no_allowance, local, host, named):
    started = time.monotonic()
    with pytest.raises(ProbeError) as caught:
        seam().request("GET", f"http://{host}:{local.port}/api/v1/timelines/home")
    assert caught.value.failure_class == FailureClass.CONNECT and caught.value.permanent
    assert named in caught.value.message and "SSRF" in caught.value.message
    assert local.connections == 0 and time.monotonic() - started < 1  # refused before any connect


@pytest.mark.django_db
def test_a_run_to_a_private_target_is_recorded_as_a_failed_connect(no_allowance, local, locations):
    platform = Platform.objects.create(name="Inside", slug="inside", kind="mastodon",
                                       base_url=f"http://127.0.0.1:{local.port}")
    Account.objects.create(platform=platform, role="prober", username="prober", token="inside-token-1234")
    probe = make_probe(platform, "read", locations[:1])
    run = run_execute(placement_id=ProbeLocation.objects.get(probe=probe).id, run_key=str(uuid.uuid4()),
                      scheduled_for=timezone.now())
    assert run.outcome == Outcome.FAILURE and run.failure_class == FailureClass.CONNECT
    assert "127.0.0.1 is not a public address (loopback)" in run.error
    assert "VIGIE_ALLOW_PRIVATE_TARGETS" in run.error
    assert local.connections == 0


def test_with_the_loopback_allowance_the_same_probe_connects(local):
    assert seam().request("GET", f"http://127.0.0.1:{local.port}/api").status == 200
    assert local.connections == 1


# --- DNS changing between a check and the connect -------------------------------------------------
def test_a_dns_answer_that_changes_after_a_check_cannot_slip_past(no_allowance, local, monkeypatch):
    calls = fake_dns(monkeypatch, [PUBLIC], ["127.0.0.1"])
    # A check made before the request (what a resolve-then-request guard does) sees a public address…
    first = socket.getaddrinfo("rebind.test", local.port)[0][4][0]
    assert refusal(first) is None
    # …but the connection resolves again, and the guard checks the address it would connect to.
    with pytest.raises(ProbeError) as caught:
        seam().request("GET", f"http://rebind.test:{local.port}/api")
    assert "rebind.test resolves to 127.0.0.1, which is not a public address (loopback)" in caught.value.message
    assert len(calls) == 2 and local.connections == 0


def test_one_private_address_among_public_ones_refuses_the_host(no_allowance, local, monkeypatch):
    fake_dns(monkeypatch, [PUBLIC, "127.0.0.1"])
    with pytest.raises(ProbeError, match="resolves to 127.0.0.1"):
        seam().request("GET", f"http://mixed.test:{local.port}/api")
    assert local.connections == 0


def test_the_guard_connects_to_the_address_it_checked(local, monkeypatch):
    calls = fake_dns(monkeypatch, ["127.0.0.1"])
    assert seam().request("GET", f"http://platform.test:{local.port}/api").status == 200
    assert calls == ["platform.test"] and local.connections == 1  # one resolution, the one checked


# --- webhooks ------------------------------------------------------------------------------------
def webhook_delivery(url: str) -> Delivery:
    event = domain.event_record(key=f"incident-update:{uuid.uuid4().hex[:8]}", kind=EventKind.INCIDENT_OPENED,
                                payload={"title": "Posting failing", "status": "investigating", "body": "",
                                         "components": []})
    channel = Channel.objects.create(name="Hook", kind=Channel.Kind.WEBHOOK, url=url)
    return Delivery.objects.create(event=event, channel=channel)


@pytest.mark.django_db
def test_a_webhook_to_a_private_address_is_refused(no_allowance, local):
    for url in (f"http://127.0.0.1:{local.port}/hook", "http://169.254.169.254/latest/meta-data/",
                "http://10.0.0.1/hook"):
        with pytest.raises(TransportError) as caught:
            WebhookTransport(webhook_delivery(url)).send()
        assert caught.value.permanent and "is not a public address" in caught.value.message
        assert "SSRF" in caught.value.message
    assert local.connections == 0


@pytest.mark.django_db
def test_a_staff_webhook_to_an_allowed_address_is_delivered(local):
    WebhookTransport(webhook_delivery(f"http://127.0.0.1:{local.port}/hook")).send()
    assert local.connections == 1
