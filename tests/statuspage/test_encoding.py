"""Compressed copies of the public cache (statuspage/encoding.py, statuspage/cache.py): made once per
render, chosen per request by Accept-Encoding, each with its own ETag; through Django's real WSGI
handler and the front, as gunicorn calls them."""
from __future__ import annotations

import gzip
import threading

import brotli
import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from hypothesis import given, settings as hypothesis_settings, strategies as st

from statuspage import encoding
from statuspage.cache import cached, public_changed
from statuspage.encoding import IDENTITY, OFFERED, negotiate
from tests.statuspage.test_cache_front import Site

LIFETIME = 30
DECODE = {"br": brotli.decompress, "gzip": gzip.decompress, IDENTITY: lambda body: body}


@pytest.fixture
def site(history, public_cache, settings):
    """The feb-2023 outage's site (tests/statuspage/conftest.py): pages of a few KB, not empty ones."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    settings.VIGIE_PUBLIC_CACHE_SECONDS = LIFETIME
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield Site()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# --- Accept-Encoding ------------------------------------------------------------------------------

@pytest.mark.parametrize("header, chosen", [
    (None, IDENTITY),
    ("", IDENTITY),
    ("gzip, deflate, br, zstd", "br"),  # what browsers send
    ("gzip", "gzip"),
    ("x-gzip", "gzip"),
    ("GZIP;Q=0.5", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("gzip;q=0.5, br;q=0.8", "br"),
    ("gzip;q=0.9, br;q=0.8", "gzip"),
    ("identity", IDENTITY),
    ("identity, gzip;q=0.5", IDENTITY),  # identity asked for above gzip
    ("gzip, identity", "gzip"),  # equal: the smaller
    ("*", "br"),
    ("*;q=0.5, gzip", "gzip"),
    ("*;q=0", IDENTITY),  # nothing acceptable: a page anyway
    ("identity;q=0, *;q=0", IDENTITY),
    ("deflate, compress", IDENTITY),  # nothing offered is asked for
    ("br;q=1.5, gzip", "gzip"),  # a malformed q says nothing reliable
    ("br;q=abc", IDENTITY),
    ("br;q=0.0001", IDENTITY),
])
def test_accept_encoding_is_read_as_rfc_9110_says(header, chosen):
    assert negotiate(header, OFFERED) == chosen


def test_nothing_but_identity_is_chosen_for_a_copy_without_variants():
    assert negotiate("br, gzip", {}) == IDENTITY


QVALUES = st.sampled_from(["0", "0.0", "0.001", "0.1", "0.5", "0.8", "0.999", "1", "1.0", "1.000"])
CODINGS = st.sampled_from(["br", "gzip", "identity", "*", "deflate", "zstd", "x-gzip", "BR", "Gzip"])
ELEMENTS = st.tuples(CODINGS, st.one_of(st.none(), QVALUES))


def _header(elements) -> str:
    return ", ".join(name if q is None else f"{name};q={q}" for name, q in elements)


def _effective(elements) -> dict[str, float]:
    """What each offered encoding is worth to the reader, written from RFC 9110 independently."""
    named: dict[str, float] = {}
    for name, q in elements:
        name = "gzip" if name.lower() == "x-gzip" else name.lower()
        named[name] = max(float(q) if q is not None else 1.0, named.get(name, 0.0))
    star = named.get("*")
    worth = {coding: named.get(coding, star if star is not None else 0.0) for coding in OFFERED}
    worth[IDENTITY] = named.get(IDENTITY, star if star is not None else None)
    return worth


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(ELEMENTS, max_size=6))
def test_the_choice_is_the_most_wanted_encoding_offered(elements):
    header = _header(elements)
    chosen = negotiate(header, OFFERED)
    worth = _effective(elements)
    best = max((q for q in worth.values() if q is not None), default=0.0)
    if chosen != IDENTITY:
        assert worth[chosen] > 0, "a coding the reader refused"
        assert worth[chosen] == best
    elif best > 0 and header:
        # identity only when it is wanted as much as anything offered, or when not named and no
        # coding is acceptable
        assert worth[IDENTITY] == best or all(worth[c] == 0 for c in OFFERED)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(ELEMENTS, min_size=1, max_size=6), st.randoms())
def test_the_order_of_the_elements_does_not_matter(elements, random):
    shuffled = list(elements)
    random.shuffle(shuffled)
    assert negotiate(_header(elements), OFFERED) == negotiate(_header(shuffled), OFFERED)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_header_text_gives_an_offered_encoding(text):
    assert negotiate(text, OFFERED) in (*OFFERED, IDENTITY)


# --- the variants, through the site ---------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/api/v2/summary.json", "/history.atom"])
@pytest.mark.parametrize("accept, expected", [("gzip, deflate, br", "br"), ("gzip", "gzip"), ("identity", IDENTITY)])
def test_each_encoding_decodes_to_the_same_bytes_rendered_served_and_replayed(site, path, accept, expected):
    plain = site.request(path)[2]  # rendered, no Accept-Encoding: identity
    assert len(plain) > encoding.MIN_BYTES
    served = []
    for state in ("hit", "hit", None):  # from Django's cache, then twice from the front
        status, headers, body = site.request(path, HTTP_ACCEPT_ENCODING=accept)
        assert status.startswith("200")
        assert headers.get("Content-Encoding", IDENTITY) == expected
        assert "Accept-Encoding" in headers["Vary"]
        assert int(headers["Content-Length"]) == len(body)
        assert DECODE[expected](body) == plain
        served.append((headers, body))
    assert served[1] == served[2] and site.reached_django == 2


def test_the_request_that_renders_gets_its_encoding_too(site):
    status, headers, body = site.request("/", HTTP_ACCEPT_ENCODING="br")
    assert headers["X-Cache"] == "miss" and headers["Content-Encoding"] == "br"
    assert brotli.decompress(body) == site.request("/")[2]


def test_a_variant_is_several_times_smaller(site):
    plain = site.request("/")[2]
    for name in ("br", "gzip"):
        assert len(site.request("/", HTTP_ACCEPT_ENCODING=name)[2]) * 4 < len(plain)


def test_each_variant_has_its_own_etag_and_a_conditional_get_is_answered_304(site):
    site.request("/")
    tags = {name: site.request("/", HTTP_ACCEPT_ENCODING=name)[1]["ETag"] for name in ("br", "gzip", IDENTITY)}
    assert len(set(tags.values())) == 3
    for name, tag in tags.items():
        status, headers, body = site.request("/", HTTP_ACCEPT_ENCODING=name, HTTP_IF_NONE_MATCH=tag)
        assert status.startswith("304") and body == b"" and headers["ETag"] == tag
        assert "Accept-Encoding" in headers["Vary"]
    # Another variant's tag is not this one's: the whole response.
    status, headers, body = site.request("/", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=tags["br"])
    assert status.startswith("200") and gzip.decompress(body)
    # A change moves the tags.
    public_changed()
    site.request("/api/v2/summary.json")  # anything: the page itself is re-rendered below
    from detection.models import Component

    Component.objects.update(name="Renamed")
    public_changed()
    assert site.request("/", HTTP_ACCEPT_ENCODING="br")[1]["ETag"] != tags["br"]


def test_head_says_what_get_would_send(site):
    site.request("/")
    get = site.request("/", HTTP_ACCEPT_ENCODING="br")[1]
    status, head, body = site.request("/", method="HEAD", HTTP_ACCEPT_ENCODING="br")
    assert status.startswith("200")
    for name in ("Content-Encoding", "ETag", "Vary", "Content-Type", "Content-Length"):
        assert head.get(name) == get.get(name), name


def test_a_small_answer_is_not_encoded(site):
    status, headers, body = site.request("/badges/status.svg", HTTP_ACCEPT_ENCODING="br")
    assert len(body) < encoding.MIN_BYTES and "Content-Encoding" not in headers
    assert "Accept-Encoding" not in headers.get("Vary", "")


def test_the_front_keeps_one_copy_per_encoding_not_per_spelling(site):
    for accept in ("gzip, deflate, br", "br, gzip", "gzip, deflate, br, zstd", "gzip", "x-gzip"):
        for _ in range(2):
            site.request("/", HTTP_ACCEPT_ENCODING=accept)
    assert len(site.app.entries) == 2


def test_many_requests_after_a_change_cause_one_render_whatever_their_encodings(public_cache, settings):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 60
    renders, lock, gate = [], threading.Lock(), threading.Event()

    def view(request):
        with lock:
            renders.append(1)
            number = len(renders)
        gate.wait(5)
        return HttpResponse((f"render {number} " * 400).encode(), content_type="text/html")

    wrapped = cached(view)
    factory, accepts = RequestFactory(), ["br", "gzip", "identity", "gzip, deflate, br"] * 4
    wrapped(factory.get("/encoded-stampede"))  # a first copy
    public_changed()
    results = []

    def one(accept):
        response = wrapped(factory.get("/encoded-stampede", HTTP_ACCEPT_ENCODING=accept))
        results.append((response["X-Cache"], DECODE[response.get("Content-Encoding", IDENTITY)](response.content)))

    threads = [threading.Thread(target=one, args=(accept,)) for accept in accepts]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(30)
    assert len(renders) == 2
    states = [state for state, _ in results]
    # One rendered; the others got the earlier copy at once, or (started after it was stored) the new one.
    assert len(results) == len(accepts) and states.count("miss") == 1 and set(states) <= {"miss", "stale", "hit"}
    assert {body for state, body in results if state == "stale"} <= {b"render 1 " * 400}
    assert {body for state, body in results if state != "stale"} == {b"render 2 " * 400}
