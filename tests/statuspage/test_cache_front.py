"""The front of the WSGI application (statuspage.cache.front): a GET that Django has just answered
from the public cache is answered again without Django — the same status, headers and bytes —
until the public version changes or the copy's lifetime ends; any request Django might answer
differently still goes to Django. Through Django's real WSGI handler and middleware."""
from __future__ import annotations

import contextlib
import io
import threading
import time

import pytest
import time_machine
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import HttpResponse

from statuspage.cache import FRONT_NOTE, front, public_changed, public_version

pytestmark = pytest.mark.django_db
LIFETIME = 30


class Site:
    """The site as a WSGI server sees it, noting which requests reached Django."""

    def __init__(self):
        self.django = WSGIHandler()
        self.reached_django = 0
        self.app = front(self._counting)

    def _counting(self, environ, start_response):
        self.reached_django += 1
        return self.django(environ, start_response)

    def request(self, path: str = "/", method: str = "GET", query: str = "", **headers) -> tuple[str, dict, bytes]:
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
            "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        environ.update({name: value for name, value in headers.items()})
        answered = {}

        def start_response(status, response_headers, exc_info=None):
            answered["status"], answered["headers"] = status, dict(response_headers)

        result = self.app(environ, start_response)
        body = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        return answered["status"], answered["headers"], body


@pytest.fixture
def site(public_cache, settings):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = LIFETIME
    # As Django's test client does: the test's transaction must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield Site()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_a_page_django_served_from_the_cache_is_served_again_without_django(site):
    rendered = site.request("/")
    assert rendered[1]["X-Cache"] == "miss"  # a render is never kept by the front
    from_cache = site.request("/")
    assert from_cache[1]["X-Cache"] == "hit" and site.reached_django == 2
    again = site.request("/")
    assert site.reached_django == 2
    assert again == from_cache
    assert again[1]["Content-Security-Policy"] and again[1]["X-Frame-Options"] == "DENY"
    assert b"</html>" in again[2]


def test_a_public_change_goes_back_to_django(site):
    for _ in range(3):
        site.request("/api/v2/summary.json")
    assert site.reached_django == 2
    public_changed()
    site.request("/api/v2/summary.json")
    assert site.reached_django == 3


def test_a_copy_is_not_served_past_its_lifetime(site):
    with time_machine.travel(time.time(), tick=True) as clock:
        site.request("/")
        site.request("/")
        site.request("/")
        assert site.reached_django == 2
        clock.shift(LIFETIME + 1)
        site.request("/")
        assert site.reached_django == 3


@pytest.mark.parametrize("request_args, expected_status", [
    ({"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9"}, "302"),  # a French reader is sent to /fr/
    ({"HTTP_COOKIE": "vigie_language=fr"}, "302"),  # so is one who chose French
    ({"query": "hl=en"}, "200"),  # the language switch sets its cookie
    ({"method": "HEAD"}, "200"),
    ({"HTTP_HOST": "evil.example"}, "400"),  # a host Django refuses
    ({"HTTP_X_FORWARDED_PROTO": "https"}, "200"),
])
def test_a_request_django_may_answer_differently_goes_to_django(site, request_args, expected_status):
    site.request("/")
    kept = site.request("/")
    assert kept[1]["X-Cache"] == "hit"
    status, headers, body = site.request("/", **request_args)
    assert site.reached_django == 3
    assert status.startswith(expected_status)
    if expected_status == "302":
        assert headers["Location"] == "/fr/"


@pytest.mark.parametrize("sets_cookie, reaching_django", [(False, 1), (True, 2)])
def test_a_hit_that_sets_a_cookie_is_never_kept(public_cache, sets_cookie, reaching_django):
    """No hit of the real site sets a cookie (the language switch has a query string), so an app
    that answers a hit with one stands in for a middleware that someday would."""
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        environ[FRONT_NOTE] = (public_version(), time.time() + LIFETIME)
        start_response("200 OK", [("Content-Type", "text/plain"), *([("Set-Cookie", "k=v")] if sets_cookie else [])])
        return HttpResponse(b"a hit")

    served = front(app)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": ""}
    for _ in range(2):
        assert served(environ.copy(), lambda status, headers, exc_info=None: None) is not None
    assert len(calls) == reaching_django


def test_a_query_string_is_never_answered_by_the_front(site):
    for _ in range(3):
        site.request("/", query="hl=en")
    assert site.reached_django == 3


def test_only_a_few_requests_are_kept(site):
    from statuspage.cache import FRONT_ENTRIES

    for n in range(FRONT_ENTRIES + 5):
        site.request("/", HTTP_ACCEPT_LANGUAGE=f"en;q=0.{n % 10}, de;q=0.{n // 10}")
        site.request("/", HTTP_ACCEPT_LANGUAGE=f"en;q=0.{n % 10}, de;q=0.{n // 10}")
    assert len(site.app.entries) == FRONT_ENTRIES


def test_the_copy_from_before_a_change_is_served_again_by_the_front_only_briefly(site, public_cache):
    from django.utils.translation import get_language

    from statuspage.cache import FRONT_STALE_S

    with time_machine.travel(time.time(), tick=False) as clock:
        site.request("/api/v2/summary.json")
        public_changed()
        # Another process is rendering the new copy (it holds the page's render lock).
        public_cache.set(f"vigie:render:{get_language()}:/api/v2/summary.json", time.time(), timeout=60)
        stale = site.request("/api/v2/summary.json")
        assert stale[1]["X-Cache"] == "stale" and site.reached_django == 2
        # The requests meanwhile cost what a hit does: the front answers them...
        assert site.request("/api/v2/summary.json") == stale and site.reached_django == 2
        # ...for FRONT_STALE_S only: then Django looks again, and takes the new copy once there.
        clock.shift(FRONT_STALE_S + 0.05)
        public_cache.delete(f"vigie:render:{get_language()}:/api/v2/summary.json")
        fresh = site.request("/api/v2/summary.json")
        assert fresh[1]["X-Cache"] == "miss" and site.reached_django == 3


class Slow:
    """An app answering as `cached` does on a hit, each answer its own body; the calls listed in
    `blocked` wait for `go` (a Django pass that takes a while)."""

    def __init__(self, blocked=()):
        self.calls, self.blocked, self.go = 0, set(blocked), threading.Event()

    def __call__(self, environ, start_response):
        self.calls += 1
        number = self.calls
        if number in self.blocked:
            assert self.go.wait(10)
        environ[FRONT_NOTE] = (public_version(), time.time() + LIFETIME)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return HttpResponse(f"answer {number}".encode())


def get(served, path: str = "/held") -> bytes:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": ""}
    return b"".join(served(environ, lambda status, headers, exc_info=None: None))


@contextlib.contextmanager
def one_asking(served, app: Slow, path: str = "/held"):
    """A request for `path` in a thread of its own, inside its Django pass (the app's blocked call)
    for the block's length; let go at its end."""
    asking = threading.Thread(target=get, args=(served, path))
    asking.start()
    deadline = time.monotonic() + 10
    while app.calls < min(app.blocked):
        assert time.monotonic() < deadline, "the request never reached Django"
        time.sleep(0.001)
    try:
        yield
    finally:
        app.go.set()
        asking.join(10)


def test_while_one_request_asks_django_for_an_old_copy_the_others_get_it_briefly(public_cache):
    app = Slow(blocked={2})
    served = front(app)
    assert get(served) == b"answer 1"
    assert get(served) == b"answer 1" and app.calls == 1  # held by the front
    public_changed()  # the copy is old now: the next request asks Django, and takes a while
    with one_asking(served, app):
        # Meanwhile (within FRONT_HOLD_S) the others get the copy the front holds, not a pass each.
        assert [get(served) for _ in range(5)] == [b"answer 1"] * 5 and app.calls == 2
    assert get(served) == b"answer 2" and app.calls == 2  # the new copy, held in its turn


def test_the_old_copy_is_not_handed_out_past_the_hold(public_cache, monkeypatch):
    from statuspage import cache as public

    monkeypatch.setattr(public, "FRONT_HOLD_S", 0.05)
    app = Slow(blocked={2})
    served = front(app)
    get(served)
    public_changed()
    with one_asking(served, app):
        time.sleep(0.1)  # past the hold: Django answers, though a request is still asking
        assert get(served) == b"answer 3" and app.calls == 3


def test_each_page_is_asked_for_on_its_own(public_cache):
    app = Slow(blocked={3})
    served = front(app)
    get(served)
    assert get(served, "/other") == b"answer 2"
    public_changed()
    with one_asking(served, app):  # /held asks Django, and takes a while
        assert get(served, "/other") == b"answer 4" and app.calls == 4  # not held behind another page


def test_a_copy_that_went_old_long_ago_is_never_handed_out(public_cache):
    app = Slow(blocked={2})
    served = front(app)
    with time_machine.travel(time.time(), tick=True) as clock:
        get(served)
        clock.shift(LIFETIME + 5)  # its lifetime ran out 5 s ago, unasked for meanwhile
        with one_asking(served, app):
            assert get(served) == b"answer 3" and app.calls == 3  # to Django, not the old copy


def test_a_copy_from_two_changes_ago_is_never_handed_out(public_cache):
    app = Slow(blocked={2})
    served = front(app)
    get(served)
    public_changed()
    public_version()  # this process sees the first change (the page is not asked for meanwhile)
    public_changed()  # and then another: the copy held is two states old
    with one_asking(served, app):
        assert get(served) == b"answer 3" and app.calls == 3
