"""The public site's response cache: each page and document is rendered once per public change.

A version number kept in the shared cache names the public state. Every change the public can see
(detection.events.public_changed, sent after its transaction commits) bumps it, so the next request
renders afresh and every process sees the same version. A short lifetime bounds what moves with
the clock alone (the "monitoring delayed" notice). When VIGIE_PUBLISH_DIR is set, a change also
queues a rewrite of the static copy, coalesced so that a burst of changes makes one rewrite.

Each process also keeps the last copy of a few pages in its own memory, so that a request between
two changes reads only the small version number from the shared cache, not the whole page (a third
of a request's time on the 285 KB status page of 50 components). In front of Django (`front`,
wrapped around the WSGI application in vigie/wsgi.py), a GET Django has just served as such a
hit is served again, byte for byte, until the version or the copy's lifetime changes.

A copy of a compressible response also holds its gzip and brotli encodings, made once when it is
rendered (statuspage/encoding.py); each request gets the one its Accept-Encoding prefers, with
`Vary: Accept-Encoding`, its Content-Encoding and an ETag of its own (a hit then writes about a
tenth of the bytes: the status page of 50 components is 263 KB, 19 KB in brotli).
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import hashlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from django.utils import translation
from django.utils.translation import get_language

from statuspage import encoding as encodings

from statuspage.tasks import PUBLISH_PENDING_KEY, publish_static

log = logging.getLogger(__name__)

VERSION_KEY = "vigie:public:version"
PUBLISH_DELAY_S = 2
KEPT_HEADERS = ("Access-Control-Allow-Origin", "Content-Language", "Vary", "Content-Security-Policy")
# Longest a process serves pages under the public version it last read, before reading it again:
# how late a change made in another process can show.
VERSION_CHECK_S = 0.1
# How long a render may hold a page's lock, and how long others wait when no earlier copy exists.
RENDER_LOCK_S = 10
WAIT_FOR_RENDER_S = 5.0
# Pages each process keeps in memory: both languages' status page, the JSON documents and feeds
# most polled, a few more. At most this many times the largest page (285 KB for `/` with 50
# components): a few MB per process.
MEMORY_ENTRIES = 12
# What the front (below) keys its copies by: everything of a GET without a query string that
# Django's middleware reads to decide its response (the host it validates, the scheme behind a
# proxy, the language cookie and Accept-Language that may redirect to a twin).
# The encoding chosen from Accept-Encoding is part of the key too (not the header's text: browsers
# send a handful of spellings of the same preference).
FRONT_KEYS = ("PATH_INFO", "SCRIPT_NAME", "HTTP_HOST", "HTTP_X_FORWARDED_HOST", "SERVER_NAME", "SERVER_PORT",
              "wsgi.url_scheme", "HTTP_X_FORWARDED_PROTO", "HTTP_COOKIE", "HTTP_ACCEPT_LANGUAGE")
FRONT_ENTRIES = 32
# The copy from before a change, served while the new one renders, is served again by the front
# for this long (then Django looks again: the new copy, or the old one while the render lasts), so
# that the requests meanwhile cost what a hit costs, not a whole pass through Django (which made
# them queue: p99 300-470 ms through a change with gunicorn). As late as VERSION_CHECK_S makes a
# change seen.
FRONT_STALE_S = 0.1
FRONT_NOTE = "vigie.cache.hit"  # set in the WSGI environ by `cached` on a hit: (version, expires at)
# When a copy the front holds goes old (the public version moved, its lifetime or its stale replay
# ran out), one request of the process asks Django again; those arriving meanwhile get the copy the
# front holds, if it went old less than this long ago (a change: since this process saw it, within
# VERSION_CHECK_S of it) — the lateness VERSION_CHECK_S already allows a change. Without it, every
# thread of a threaded server's worker (granian: one per connection) passed through Django at once,
# at the change and again at each FRONT_STALE_S: p99 110-165 ms through a change where the cache
# hits' was 21-35 (docs/performance.md).
FRONT_HOLD_S = 0.1


def _went_old_just_now(version: int, expires_at: float, current: int | None) -> bool:
    """Whether a copy the front holds went old less than FRONT_HOLD_S ago: its lifetime (or its
    stale replay's) ran out just now, or it was current until the change this process saw just
    now. A copy older than that is never handed out, whoever is asking Django."""
    if version == current:
        return 0 <= time.time() - expires_at < FRONT_HOLD_S
    return (current is not None and version == _seen.previous
            and time.monotonic() - _seen.changed_at < FRONT_HOLD_S)


# cache.add is atomic on Redis (SET NX) but not on the file cache of the embedded default (it
# checks, then writes): within a process, threads take this lock around it as well.
_ADD_LOCK = threading.Lock()


class Kept(NamedTuple):
    """A response as the cache keeps it; `stored_at` (epoch seconds) starts its lifetime.
    `variants` holds its content in each encoding made at render time (encoding → bytes; empty
    for a response too small or of a type not worth compressing), `tag` names the content: each
    variant's ETag is made from it (encoding.etag)."""

    status: int
    content: bytes
    headers: dict[str, str]
    stored_at: float
    variants: dict[str, bytes] = {}
    tag: str = ""


class Memory:
    """This process's copies: the last one seen of each of a few pages, with its version; the
    least recently used page goes first. Shared by the threads of a gthread worker."""

    def __init__(self, size: int = MEMORY_ENTRIES):
        self.size = size
        self._entries: OrderedDict[str, tuple[int, Kept]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, where: str) -> tuple[int, Kept] | None:
        with self._lock:
            entry = self._entries.get(where)
            if entry is not None:
                self._entries.move_to_end(where)
            return entry

    def put(self, where: str, version: int, kept: Kept) -> None:
        with self._lock:
            self._entries[where] = (version, kept)
            self._entries.move_to_end(where)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def discard(self, where: str) -> None:
        with self._lock:
            self._entries.pop(where, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


memory = Memory()


class _Seen:
    """The public version as this process last read it, and when (time.monotonic()); the one it
    read before that (`previous`) and when it first read a different one (`changed_at`), for the
    front's hold (FRONT_HOLD_S). `last` outlives public_changed, which forgets `version`."""

    version: int | None = None
    at: float = 0.0
    last: int | None = None
    previous: int | None = None
    changed_at: float = float("-inf")


_seen = _Seen()


def process_forget() -> None:
    """Forget what this process keeps between requests: its pages and the version it read."""
    memory.clear()
    _seen.version = None


def public_version() -> int | None:
    """The current public version, or None when the cache cannot be reached. Read from the shared
    cache at most every VERSION_CHECK_S per process: that round trip was a third of what serving
    a page from memory cost (gunicorn, 264 KB status page). A change made in this process is seen
    at once (public_changed forgets the version read), one made elsewhere within VERSION_CHECK_S."""
    seen = _seen
    if seen.version is not None and time.monotonic() - seen.at < VERSION_CHECK_S:
        return seen.version
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            # After a flush, start from the clock so no old entry can be mistaken for current.
            with _ADD_LOCK:
                cache.add(VERSION_KEY, int(time.time() * 1000), timeout=None)
            version = cache.get(VERSION_KEY)
    except Exception:  # the page must keep working when the cache server does not
        log.warning("public cache unreachable; serving uncached", exc_info=True)
        seen.version = None
        return None
    seen.version, seen.at = version, time.monotonic()
    if version != seen.last:
        if seen.last is not None:
            seen.previous, seen.changed_at = seen.last, seen.at
        seen.last = version
    return version


PUBLISHED_FRESHNESS_KEY = "vigie:publish:freshness"


def freshness_fingerprint() -> str:
    """A digest of what the page says of its freshness: each component's last check, staleness and
    shown status. It moves with every run and with the clock (a component going stale)."""
    from statuspage import selectors

    rows = [(c.id, c.last_checked.isoformat() if c.last_checked else "", c.stale, c.status)
            for c in selectors.components()]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def static_copy_freshen() -> bool:
    """Queue a rewrite of the static copy when its freshness changed since the last one queued:
    the copy says what the live page says ("Last checked", "no data"), within one dispatch
    interval, not only after a public change. Called by each dispatch pass; True if queued."""
    if not settings.VIGIE_PUBLISH_DIR:
        return False
    try:
        fingerprint = freshness_fingerprint()
        if cache.get(PUBLISHED_FRESHNESS_KEY) == fingerprint:
            return False
        cache.set(PUBLISHED_FRESHNESS_KEY, fingerprint, timeout=None)
        pending = cache.add(PUBLISH_PENDING_KEY, 1, timeout=PUBLISH_DELAY_S * 5)
    except Exception:
        log.warning("public cache unreachable; the static copy's freshness waits", exc_info=True)
        return False
    if not pending:
        return False  # a rewrite is queued already: it renders what is current when it runs
    from statuspage.tasks import publish_static

    try:
        publish_static.apply_async()
    except Exception:
        log.warning("could not queue the static copy's rewrite: the broker is unreachable", exc_info=True)
        cache.delete(PUBLISH_PENDING_KEY)
        cache.delete(PUBLISHED_FRESHNESS_KEY)
        return False
    return True


def public_changed(**_signal) -> None:
    """Receiver of detection.events.public_changed: make every cached response old.

    Neither the cache server nor the broker being away may fail the change that caused this (it
    has committed): each failure is logged, cached responses then age out within
    VIGIE_PUBLIC_CACHE_SECONDS, and the static copy is rewritten at the next change."""
    _seen.version = None
    try:
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # no version yet (or flushed): any new one will do
            cache.set(VERSION_KEY, int(time.time() * 1000), timeout=None)
        pending = settings.VIGIE_PUBLISH_DIR and cache.add(PUBLISH_PENDING_KEY, 1, timeout=PUBLISH_DELAY_S * 5)
    except Exception:
        log.warning("public cache unreachable; cached responses age out on their own", exc_info=True)
        return
    if pending:
        try:
            publish_static.apply_async(countdown=PUBLISH_DELAY_S)
        except Exception:  # the broker being away (the send fails within a second or two)
            log.warning("could not queue the static copy's rewrite: the broker is unreachable", exc_info=True)
            try:
                cache.delete(PUBLISH_PENDING_KEY)
            except Exception:
                pass


_current_only = contextvars.ContextVar("vigie_public_current_only", default=False)


@contextlib.contextmanager
def current_copies():
    """Within it, `cached` answers only with the current version's copy, never with the one from
    before a change: it waits for the render in progress or renders itself. What publish writes
    (a file stays until the next rewrite) must not be a copy the live site is already replacing."""
    token = _current_only.set(True)
    try:
        yield
    finally:
        _current_only.reset(token)


def cached(view):
    """Serve a public GET view from the cache, keyed by public version, language and path.

    From this process's memory when it holds the current version's copy, else from the shared
    cache. No stampede: when a change makes the cached copy old, one request (the one that wins a
    short lock) has the new one rendered; every request meanwhile gets the previous copy (marked
    stale), or, with none, waits briefly for the new one.

    With VIGIE_PUBLIC_STALE_SECONDS (the default), the render runs in a thread of the process, off
    the request path: the request that started it is answered from the previous copy at once, like
    the others, and no connection waits behind a render (80–150 ms for the status page of 50
    components) — the previous copy is served for at most VIGIE_PUBLIC_STALE_SECONDS after the render
    began; past that, requests wait for the new copy or render it themselves. With 0, the request
    that wins the lock renders in its own turn (the others get the previous copy while the lock,
    RENDER_LOCK_S, holds): what the tests use, as a test's data never commits where a thread could
    read it."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        lifetime = settings.VIGIE_PUBLIC_CACHE_SECONDS
        if request.method not in ("GET", "HEAD") or not lifetime:
            return view(request, *args, **kwargs)
        # The version is read on every request, so a change made in any process is seen at once.
        version = public_version()
        if version is None:
            return view(request, *args, **kwargs)
        where = f"{get_language()}:{request.path}"
        now = time.time()
        local = memory.get(where)
        if local is not None and local[0] == version and now < local[1].stored_at + lifetime:
            request.META[FRONT_NOTE] = (version, local[1].stored_at + lifetime)
            return _replay(local[1], "hit", request)
        # "kept", not the earlier "resp" and "page": entries are Kept tuples with their encoded
        # variants now, which a process of the release before (during a rolling deploy) could not
        # read, nor this one its entries.
        key, last_key, lock_key = f"vigie:kept:{version}:{where}", f"vigie:kept:last:{where}", f"vigie:render:{where}"
        keys = (where, version, key, last_key, lock_key)
        try:
            hit = cache.get(key)
            if hit is not None:
                memory.put(where, version, hit)
                request.META[FRONT_NOTE] = (version, hit.stored_at + lifetime)
                return _replay(hit, "hit", request)
            with _ADD_LOCK:
                # The lock holds when the render began: how long the copy from before may be served.
                rendering = not cache.add(lock_key, now, timeout=RENDER_LOCK_S)
            if not rendering:
                # Won the lock: whoever held it just before may have stored the copy between the
                # read above and now (a request that lost that race rendered the page twice).
                hit = cache.get(key)
                if hit is not None:
                    cache.delete(lock_key)
                    memory.put(where, version, hit)
                    request.META[FRONT_NOTE] = (version, hit.stored_at + lifetime)
                    return _replay(hit, "hit", request)
                if settings.VIGIE_PUBLIC_STALE_SECONDS and not _current_only.get():
                    earlier = _earlier(local, now, lifetime, last_key)
                    if earlier is not None:
                        # Render off the request path: this request, like every other meanwhile,
                        # gets the copy from before the change, and no worker's queue waits.
                        _render_behind(view, request, args, kwargs, keys, lifetime)
                        request.META[FRONT_NOTE] = (version, now + FRONT_STALE_S)
                        return _replay(earlier, "stale", request)
            if rendering:
                # Someone is rendering it: serve the copy from before the change while that render
                # is young enough (the bound on how old a state the page may show), or wait for it.
                started = cache.get(lock_key)
                started = started if isinstance(started, float) else now
                if now - started < (settings.VIGIE_PUBLIC_STALE_SECONDS or RENDER_LOCK_S) and not _current_only.get():
                    earlier = _earlier(local, now, lifetime, last_key)
                    if earlier is not None:
                        request.META[FRONT_NOTE] = (version, now + FRONT_STALE_S)
                        return _replay(earlier, "stale", request)
                deadline = time.monotonic() + WAIT_FOR_RENDER_S
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    hit = cache.get(key)
                    if hit is not None:
                        memory.put(where, version, hit)
                        return _replay(hit, "hit", request)
        except Exception:
            log.warning("public cache unreachable; serving uncached", exc_info=True)
            return view(request, *args, **kwargs)
        return _render(view, request, args, kwargs, keys, lifetime)

    return wrapper


def _earlier(local: tuple[int, Kept] | None, now: float, lifetime: int, last_key: str) -> Kept | None:
    """The copy from before the change: this process's, if no older than the shared one may be."""
    if local is not None and now < local[1].stored_at + _last_lifetime(lifetime):
        return local[1]
    return cache.get(last_key)


def _render_behind(view, request: HttpRequest, args, kwargs, keys: tuple[str, int, str, str, str],
                   lifetime: int) -> None:
    """Render the page in a thread of this process, which holds the render lock already: it stores
    the new copy (shared cache and this process's memory) and lets the lock go. A render that does
    not give a page to keep (a 404 now, a redirect) forgets the copy from before, so that the next
    request renders in its own turn and answers what the page is now, not what it was."""
    where, version, _key, last_key, _lock_key = keys
    twin = copy.copy(request)  # the request goes on to the middleware: the render gets its own
    twin.META = dict(request.META)
    language = get_language()

    def run() -> None:
        translation.activate(language)
        _quick_switches(+1)
        try:
            _render(view, twin, args, kwargs, keys, lifetime)
            kept = memory.get(where)
            if kept is None or kept[0] != version:  # nothing to keep (_render keeps what it can)
                cache.delete(last_key)
                memory.discard(where)
        except Exception:
            log.warning("rendering %s behind the requests failed; the next request tries again", where,
                        exc_info=True)
        finally:
            _quick_switches(-1)
            translation.deactivate()
            connections.close_all()  # this thread's own: it ends here

    threading.Thread(target=run, name=f"vigie render {where}", daemon=True).start()


# While a render runs behind, the threads answering requests in the same process wait for the GIL
# at most this long (Python's default: 5 ms), so that the render slows each of them by a fraction
# of a millisecond, not 5 ms per turn (what made the p99 of a worker rendering 100-400 ms).
RENDER_SWITCH_INTERVAL_S = 0.0005
_switches = {"renders": 0, "default": sys.getswitchinterval()}
_switches_lock = threading.Lock()


def _quick_switches(step: int) -> None:
    with _switches_lock:
        if _switches["renders"] == 0 and step > 0:
            _switches["default"] = sys.getswitchinterval()
            sys.setswitchinterval(min(_switches["default"], RENDER_SWITCH_INTERVAL_S))
        _switches["renders"] += step
        if _switches["renders"] == 0:
            sys.setswitchinterval(_switches["default"])


def _last_lifetime(lifetime: int) -> int:
    # The copy from before a change is kept longer than its version: it is served while the next
    # version is being rendered.
    return 2 * lifetime + RENDER_LOCK_S


def _replay(kept: Kept, state: str, request: HttpRequest) -> HttpResponse:
    chosen = encodings.negotiate(request.META.get("HTTP_ACCEPT_ENCODING"), kept.variants) if kept.variants \
        else encodings.IDENTITY
    tag = encodings.etag(kept.tag, chosen) if kept.tag else None
    if tag is not None and tag in parse_etags(request.META.get("HTTP_IF_NONE_MATCH", "")):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(kept.variants.get(chosen, kept.content), status=kept.status)
        for name, value in kept.headers.items():
            response[name] = value
        if chosen != encodings.IDENTITY:
            response["Content-Encoding"] = chosen
    if kept.variants:
        patch_vary_headers(response, ("Accept-Encoding",))
    if tag is not None:
        response["ETag"] = tag
    response["X-Cache"] = state
    return response


def _render(view, request, args, kwargs, keys: tuple[str, int, str, str, str], lifetime: int) -> HttpResponse:
    where, version, key, last_key, lock_key = keys
    try:
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not response.streaming:
            headers = {name: response[name] for name in ("Content-Type", *KEPT_HEADERS) if response.has_header(name)}
            content = response.content
            kept = Kept(response.status_code, content, headers, time.time(),
                        encodings.variants(content, headers.get("Content-Type", "")), encodings.content_tag(content))
            memory.put(where, version, kept)
            try:
                cache.set(key, kept, timeout=lifetime)
                cache.set(last_key, kept, timeout=_last_lifetime(lifetime))
            except Exception:
                log.warning("public cache unreachable; response not kept", exc_info=True)
            # The one who rendered gets what the others will: its encoding, its ETag.
            replay = _replay(kept, "miss", request)
            for name, value in response.items():
                if name.lower() not in ("content-length", "content-encoding", "etag", "vary") \
                        and not replay.has_header(name):
                    replay[name] = value
            replay.cookies = response.cookies
            return replay
        response["X-Cache"] = "miss"
        return response
    finally:
        try:
            cache.delete(lock_key)
        except Exception:
            pass


class Replay(NamedTuple):
    """A whole response as Django's middleware finished it: what the front sends again."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    expires_at: float  # time.time(), as Kept.stored_at + the lifetime


def front(app):
    """Wrap the WSGI application so that a GET Django has just answered from the cache is answered
    again, as long as the public version and the copy's lifetime hold, without Django: the same
    status, headers and bytes, but not the request object, nine middleware and the URL resolver
    again (three quarters of a cached request's CPU under gunicorn). Only what `cached` served as
    a hit is kept (never a render, a redirect, an error, or a response setting a cookie), keyed by
    the path, every header the middleware reads (FRONT_KEYS) and the encoding Accept-Encoding
    chooses; anything else — a query string, HEAD, a conditional GET (If-None-Match: Django
    answers it, 304 when it can), another method — goes to Django as before."""
    entries = Memory(FRONT_ENTRIES)
    # key → [the old entry, whether a request is asking Django for it now]: one request at a time
    # asks, while the copy went old just now (FRONT_HOLD_S).
    asking: dict[tuple, list] = {}
    asking_lock = threading.Lock()

    def application(environ, start_response):
        if (environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING")
                or environ.get("HTTP_IF_NONE_MATCH")):
            return app(environ, start_response)
        key = (*(environ.get(name, "") for name in FRONT_KEYS),
               encodings.negotiate(environ.get("HTTP_ACCEPT_ENCODING"), encodings.OFFERED))
        entry = entries.get(key)
        state = None
        if entry is not None:
            version, replay = entry
            current = public_version()
            if time.time() < replay.expires_at and version == current:
                start_response(replay.status, replay.headers)
                return [replay.body]
            recent = _went_old_just_now(version, replay.expires_at, current)
            with asking_lock:
                state = asking.get(key)
                if state is None or state[0] is not entry:
                    state = asking[key] = [entry, False]
                held = state[1] and recent
                if not held:
                    state[1] = True  # this request asks Django
            if held:
                start_response(replay.status, replay.headers)
                return [replay.body]
        try:
            return _through_django(environ, start_response, key)
        finally:
            if state is not None:
                with asking_lock:
                    state[1] = False
                    if asking.get(key) is state and entries.get(key) is not state[0]:
                        del asking[key]  # a newer copy is held (or none): nothing old to hand out

    def _through_django(environ, start_response, key):
        answered = []

        def start(status, headers, exc_info=None):
            answered.append((status, headers))
            return start_response(status, headers, exc_info)

        result = app(environ, start)
        note = environ.get(FRONT_NOTE)
        if (note is not None and answered and answered[-1][0].startswith("200 ")
                and getattr(result, "streaming", True) is False
                and not any(name.lower() == "set-cookie" for name, _ in answered[-1][1])):
            status, headers = answered[-1]
            entries.put(key, note[0], Replay(status, list(headers), result.content, note[1]))
        return result

    application.entries = entries
    application.asking = asking
    return application

