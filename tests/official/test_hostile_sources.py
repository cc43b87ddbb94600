"""Hostile official sources, served over real HTTP by a small server of their own: each one makes
the source unreachable with a reason in Vigie's words, never a crash and never "operational"."""
from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from official.models import OfficialSource
from official.state import official_source_read

pytestmark = pytest.mark.django_db

STATUS = b'{"page": {}, "status": {"indicator": "none", "description": "All Systems Operational"}}'
EMPTY = {"/api/v2/incidents/unresolved.json": b'{"incidents": []}', "/api/v2/components.json": b'{"components": []}'}


class Hostile(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self):  # noqa: N802
        status, headers, body = self.answers.get(self.path, (200, {}, EMPTY.get(self.path, b"")))
        self.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def platform_source(hostile):
    from probes.models import Platform

    platform = Platform.objects.create(name="Hostile", slug="hostile", kind="mastodon", base_url=hostile)
    return OfficialSource.objects.create(platform=platform, kind="statuspage", url=hostile)


def read_with(source, status_answer, monkeypatch):
    monkeypatch.setattr(Hostile, "answers", {"/api/v2/status.json": status_answer})
    assert official_source_read(source_id=source.id) == "unreachable"
    source.refresh_from_db()
    return source.last_error


@pytest.mark.parametrize("answer, reason", [
    ((200, {}, b"[" * 5000 + b"]" * 5000), "GET /api/v2/status.json answered 200 (application/json) with JSON "
                                           "nested deeper than 64 levels"),
    ((200, {}, b"not json \x00\x1b[31m"), "GET /api/v2/status.json answered 200 (application/json) with a body "
                                         "that is not JSON"),
    ((200, {}, b" " * 1_500_000), "GET /api/v2/status.json answered more than 1000000 bytes"),
    ((200, {"Content-Encoding": "gzip"}, gzip.compress(b" " * 3_000_000)),
     "GET /api/v2/status.json answered more than 1000000 bytes"),
    ((302, {"Location": "/api/v2/status.json"}, b""), "GET /api/v2/status.json redirected more than 3 times"),
    ((302, {"Location": "javascript:alert(1)"}, b""), "GET /api/v2/status.json redirected to a non-http(s) address"),
    ((200, {}, b'{"status": {"indicator": "none\\u0000"}}'),
     "status.json's indicator is 'none', not one of none, minor, major, critical, maintenance"),
])
def test_a_hostile_answer_makes_the_source_unreachable(platform_source, monkeypatch, answer, reason):
    assert read_with(platform_source, answer, monkeypatch) == reason


def test_a_redirect_to_a_good_page_is_followed(platform_source, monkeypatch):
    monkeypatch.setattr(Hostile, "answers", {"/api/v2/status.json": (301, {"Location": "/moved/status.json"}, b""),
                                             "/moved/status.json": (200, {}, STATUS)})
    assert official_source_read(source_id=platform_source.id) == "none"


def test_a_redirect_to_a_private_address_is_refused_by_the_guard(platform_source, monkeypatch):
    # Loopback is allowed (the tests' server); the cloud metadata address a redirect names is not.
    assert "refused by the SSRF guard" in read_with(
        platform_source, (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b""), monkeypatch)
