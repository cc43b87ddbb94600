"""A platform that misbehaves on purpose, over real sockets: every response stays bounded and classified."""
from __future__ import annotations

import gzip
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import tracemalloc
import uuid
from collections import defaultdict

import pytest
from django.utils import timezone

from platforms.errors import ProbeError
from platforms.http import HttpSeam
from probes.models import Account, FailureClass, Outcome, Platform, ProbeLocation
from probes.runner import run_execute
from tests.conftest import make_probe

CAP = 2_000_000  # the default VIGIE_MAX_RESPONSE_BYTES
FIFTY_MB = 50 * 1024 * 1024
BOMB_MEMBER = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)  # 8 MiB of zeros in ~8 KiB
BOMB_MEMBERS = 128  # gzip members concatenated: 1 GiB of zeros in ~1 MiB
HTML_PAGE = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"


class Hostile(socketserver.ThreadingTCPServer):
    """Answers by the first path segment (/big, /drip, /bomb, …); counts the bytes it got out."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), HostileHandler)
        self.sent: dict[str, int] = defaultdict(int)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class HostileHandler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.respond()
        except OSError:  # the client gave up (or refused our certificate), as it should
            pass

    def respond(self):
        request = b""
        while b"\r\n\r\n" not in request:
            data = self.request.recv(4096)
            if not data:
                return
            request += data
            if request[:1] == b"\x16":  # a TLS ClientHello on this plain port: answer as nginx does
                self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return
        path = request.split(b" ", 2)[1].decode()
        kind = path.strip("/").split("/", 1)[0]
        getattr(self, f"answer_{kind.replace('-', '_')}")(kind)

    def send(self, kind: str, data: bytes) -> None:
        self.request.sendall(data)
        self.server.sent[kind] += len(data)

    def head(self, kind: str, status: str = "200 OK", **headers: str | int) -> None:
        lines = [f"HTTP/1.1 {status}", "Connection: close",
                 *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
        self.send(kind, ("\r\n".join(lines) + "\r\n\r\n").encode())

    def answer_big(self, kind):
        self.head(kind, Content_Type="application/json", Content_Length=FIFTY_MB)
        block = b"[" + b"0," * 32767 + b"0"  # a JSON array that never closes
        left = FIFTY_MB
        while left > 0:
            self.send(kind, block[:left])
            left -= len(block[:left])

    def answer_drip(self, kind):
        self.head(kind, Content_Type="application/json", Content_Length=1000)
        for _ in range(1000):
            self.send(kind, b" ")
            time.sleep(1)

    def answer_drip_headers(self, kind):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
            self.send(kind, bytes([byte]))
            time.sleep(1)

    def answer_html(self, kind):
        self.head(kind, Content_Type="text/html; charset=utf-8", Content_Length=len(HTML_PAGE))
        self.send(kind, HTML_PAGE)

    def answer_badjson(self, kind):
        body = b'{"id": "1", "content": "cut here'
        self.head(kind, Content_Type="application/json", Content_Length=len(body))
        self.send(kind, body)

    def answer_loop(self, kind):
        self.head(kind, "302 Found", Location="/loop/again", Content_Length=0)

    def answer_bomb(self, kind):
        self.head(kind, Content_Type="application/json", Content_Encoding="gzip",
                  Content_Length=len(BOMB_MEMBER) * BOMB_MEMBERS)
        for _ in range(BOMB_MEMBERS):
            self.send(kind, BOMB_MEMBER)

    def answer_drop(self, kind):
        self.head(kind, Content_Type="application/json", Content_Length=100_000)
        self.send(kind, b"[" + b"1," * 500)
        self.request.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def hostile():
    server = Hostile()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def seam(timeout_s: float = 5.0) -> HttpSeam:
    return HttpSeam(user_agent="Vigie/test (probe; location=test)", deadline=time.monotonic() + timeout_s,
                    max_bytes=CAP, secrets=["hostile-token-1234"])


def measured(call):
    """Run `call`, returning (its result or ProbeError, seconds taken, peak bytes Python allocated)."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        outcome = call()
    except ProbeError as exc:
        outcome = exc
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, elapsed, peak


def run_against(url: str, locations, *, timeout_s: float = 5.0):
    platform = Platform.objects.create(name="Hostile", slug=f"hostile-{uuid.uuid4().hex[:6]}", kind="mastodon",
                                       base_url=url)
    Account.objects.create(platform=platform, role="prober", username="prober", token="hostile-token-1234")
    probe = make_probe(platform, "read", locations[:1], timeout_s=timeout_s)
    placement = ProbeLocation.objects.get(probe=probe)
    started = time.monotonic()
    run = run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
    return run, time.monotonic() - started


# --- a 50 MB body --------------------------------------------------------------------------------
def test_a_50_mb_body_is_read_only_up_to_the_cap_in_bounded_memory(hostile):
    result, elapsed, peak = measured(lambda: seam().request("GET", hostile.url + "/big/api"))
    assert result.status == 200 and result.truncated and len(result.body) == CAP
    assert peak < 4 * CAP, f"peak Python memory {peak} bytes"
    time.sleep(0.2)
    assert hostile.sent["big"] < FIFTY_MB / 2, "the client should hang up long before the end"
    print(f"\n50 MB body: kept {len(result.body)} bytes, peak memory {peak} bytes, "
          f"server got {hostile.sent['big']} bytes out before the hang-up, {elapsed:.2f} s")


@pytest.mark.django_db
def test_a_run_records_that_the_body_was_truncated(hostile, locations):
    run, _ = run_against(hostile.url + "/big", locations)
    assert run.outcome == Outcome.FAILURE and run.failure_class == FailureClass.UNEXPECTED
    assert run.evidence["truncated"] is True and run.evidence["status_code"] == 200
    assert "cut at 2000000 bytes" in run.error


# --- a body dripping one byte a second -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["drip", "drip-headers"])
def test_a_dripping_answer_hits_the_total_deadline_not_only_the_socket_timeout(hostile, kind):
    error, elapsed, _ = measured(lambda: seam(timeout_s=2.0).request("GET", f"{hostile.url}/{kind}/api"))
    assert isinstance(error, ProbeError) and error.failure_class == FailureClass.TIMEOUT, error
    assert "total deadline" in error.message
    assert 1.9 <= elapsed < 2.5, f"timed out after {elapsed:.2f} s for a 2 s deadline"
    print(f"\n{kind}: timeout fired after {elapsed:.2f} s for a 2 s deadline")


@pytest.mark.django_db
def test_a_run_against_a_dripping_platform_fails_as_a_timeout_in_time(hostile, locations):
    run, elapsed = run_against(hostile.url + "/drip", locations, timeout_s=2.0)
    assert run.outcome == Outcome.FAILURE and run.failure_class == FailureClass.TIMEOUT
    assert elapsed < 2.0 + 1.0, f"the run took {elapsed:.2f} s"
    assert run.steps[0]["ok"] is False and "timed out" in run.steps[0]["note"]


# --- invalid JSON, an HTML error page with 200 ---------------------------------------------------
@pytest.mark.django_db
def test_an_html_error_page_with_200_is_classified_with_its_evidence(hostile, locations):
    run, _ = run_against(hostile.url + "/html", locations)
    assert run.outcome == Outcome.FAILURE and run.failure_class == FailureClass.UNEXPECTED
    assert "text/html" in run.error and "not JSON" in run.error
    assert run.evidence["status_code"] == 200 and "502 Bad Gateway" in run.evidence["platform_error"]


@pytest.mark.django_db
def test_invalid_json_is_classified_with_its_evidence(hostile, locations):
    run, _ = run_against(hostile.url + "/badjson", locations)
    assert run.outcome == Outcome.FAILURE and run.failure_class == FailureClass.UNEXPECTED
    assert "not JSON" in run.error and "cut here" in run.evidence["platform_error"]


# --- a redirect loop -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_the_3xx_is_classified(hostile, locations):
    before = hostile.sent["loop"]
    run, _ = run_against(hostile.url + "/loop", locations)
    assert run.outcome == Outcome.FAILURE and run.failure_class == FailureClass.UNEXPECTED
    assert run.evidence["status_code"] == 302 and "302" in run.error
    assert len(run.steps) == 1  # one request: the Location was not followed
    assert hostile.sent["loop"] > before


# --- a gzip bomb ---------------------------------------------------------------------------------
def test_a_gzip_bomb_is_inflated_only_up_to_the_cap(hostile):
    result, elapsed, peak = measured(lambda: seam().request("GET", hostile.url + "/bomb/api"))
    assert result.truncated and len(result.body) == CAP and result.body == b"\0" * CAP
    assert peak < 8 * CAP, f"peak Python memory {peak} bytes"
    time.sleep(0.2)
    print(f"\ngzip bomb (1 GiB in {len(BOMB_MEMBER) * BOMB_MEMBERS} bytes): kept {len(result.body)} bytes, "
          f"peak memory {peak} bytes, server got {hostile.sent['bomb']} compressed bytes out, {elapsed:.2f} s")


@pytest.mark.django_db
def test_a_run_against_a_gzip_bomb_records_the_truncation(hostile, locations):
    run, _ = run_against(hostile.url + "/bomb", locations)
    assert run.failure_class == FailureClass.UNEXPECTED and run.evidence["truncated"] is True
    # The zeros are NUL characters, which PostgreSQL refuses: stored as U+FFFD, the run is kept.
    run.refresh_from_db()
    assert "\x00" not in run.evidence["platform_error"] and "\ufffd" in run.evidence["platform_error"]


# --- TLS errors ----------------------------------------------------------------------------------
def test_https_to_a_plain_http_port_is_a_tls_connect_failure(hostile):
    with pytest.raises(ProbeError) as caught:
        seam().request("GET", hostile.url.replace("http://", "https://") + "/html/api")
    assert caught.value.failure_class == FailureClass.CONNECT
    assert "TLS handshake failed" in caught.value.message


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """An HTTPS server whose certificate nobody signed."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Hostile()
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url.replace("http://", "https://")
    server.shutdown()
    server.server_close()


def test_a_self_signed_certificate_is_a_tls_connect_failure(self_signed):
    with pytest.raises(ProbeError) as caught:
        seam().request("GET", self_signed + "/html/api")
    assert caught.value.failure_class == FailureClass.CONNECT
    assert "TLS handshake failed" in caught.value.message and "certificate verify failed" in caught.value.message


# --- a connection dropped mid-body ---------------------------------------------------------------
def test_a_connection_dropped_mid_body_is_a_connect_failure(hostile):
    with pytest.raises(ProbeError) as caught:
        seam().request("GET", hostile.url + "/drop/api")
    assert caught.value.failure_class == FailureClass.CONNECT
    assert "dropped while reading the body" in caught.value.message
