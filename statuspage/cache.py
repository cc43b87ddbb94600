"""The public site's response cache: each page and document is rendered once per public change.

A version number kept in the shared cache names the public state. Every change the public can see
(probes.events.public_changed, sent after its transaction commits) bumps it, so the next request
renders afresh and every process sees the same version. A short lifetime bounds what moves with
the clock alone (the "monitoring delayed" notice). When VIGIE_PUBLISH_DIR is set, a change also
queues a rewrite of the static copy, coalesced so that a burst of changes makes one rewrite.
"""
from __future__ import annotations

import functools
import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.translation import get_language

log = logging.getLogger(__name__)

VERSION_KEY = "vigie:public:version"
PUBLISH_PENDING_KEY = "vigie:publish:pending"
PUBLISH_DELAY_S = 2
KEPT_HEADERS = ("Access-Control-Allow-Origin", "Content-Language", "Vary", "Content-Security-Policy")
# How long a render may hold a page's lock, and how long others wait when no earlier copy exists.
RENDER_LOCK_S = 10
WAIT_FOR_RENDER_S = 5.0
# cache.add is atomic on Redis (SET NX) but not on the file cache of the embedded default (it
# checks, then writes): within a process, threads take this lock around it as well.
_ADD_LOCK = threading.Lock()


def public_version() -> int | None:
    """The current public version, or None when the cache cannot be reached."""
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            # After a flush, start from the clock so no old entry can be mistaken for current.
            with _ADD_LOCK:
                cache.add(VERSION_KEY, int(time.time() * 1000), timeout=None)
            version = cache.get(VERSION_KEY)
        return version
    except Exception:  # the page must keep working when the cache server does not
        log.warning("public cache unreachable; serving uncached", exc_info=True)
        return None


def public_changed(**_signal) -> None:
    """Receiver of probes.events.public_changed: make every cached response old.

    Neither the cache server nor the broker being away may fail the change that caused this (it
    has committed): each failure is logged, cached responses then age out within
    VIGIE_PUBLIC_CACHE_SECONDS, and the static copy is rewritten at the next change."""
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
        from statuspage.tasks import publish_static

        try:
            publish_static.apply_async(countdown=PUBLISH_DELAY_S)
        except Exception:  # the broker being away (the send fails within a second or two)
            log.warning("could not queue the static copy's rewrite: the broker is unreachable", exc_info=True)
            try:
                cache.delete(PUBLISH_PENDING_KEY)
            except Exception:
                pass


def cached(view):
    """Serve a public GET view from the cache, keyed by public version, language and path.

    No stampede: when a change makes the cached copy old, one request (the one that wins a short
    lock) renders the new one; the others meanwhile get the previous copy (marked stale, at most
    RENDER_LOCK_S old beyond the change), or, with none, wait briefly for the new one."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        lifetime = settings.VIGIE_PUBLIC_CACHE_SECONDS
        if request.method not in ("GET", "HEAD") or not lifetime:
            return view(request, *args, **kwargs)
        version = public_version()
        if version is None:
            return view(request, *args, **kwargs)
        where = f"{get_language()}:{request.path}"
        key, last_key, lock_key = f"vigie:page:{version}:{where}", f"vigie:page:last:{where}", f"vigie:render:{where}"
        try:
            hit = cache.get(key)
            if hit is not None:
                return _replay(hit, "hit")
            with _ADD_LOCK:
                mine = cache.add(lock_key, 1, timeout=RENDER_LOCK_S)
            if not mine:
                # Someone is rendering it: serve the copy from before the change, or wait for theirs.
                earlier = cache.get(last_key)
                if earlier is not None:
                    return _replay(earlier, "stale")
                deadline = time.monotonic() + WAIT_FOR_RENDER_S
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    hit = cache.get(key)
                    if hit is not None:
                        return _replay(hit, "hit")
        except Exception:
            log.warning("public cache unreachable; serving uncached", exc_info=True)
            return view(request, *args, **kwargs)
        return _render(view, request, args, kwargs, key, last_key, lock_key, lifetime)

    return wrapper



def _replay(hit: tuple, state: str) -> HttpResponse:
    status, content, headers = hit
    response = HttpResponse(content, status=status)
    for name, value in headers.items():
        response[name] = value
    response["X-Cache"] = state
    return response


def _render(view, request, args, kwargs, key: str, last_key: str, lock_key: str, lifetime: int) -> HttpResponse:
    try:
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not response.streaming:
            headers = {name: response[name] for name in ("Content-Type", *KEPT_HEADERS) if response.has_header(name)}
            kept = (response.status_code, response.content, headers)
            try:
                cache.set(key, kept, timeout=lifetime)
                # Kept longer than its version: served while the next version is being rendered.
                cache.set(last_key, kept, timeout=2 * lifetime + RENDER_LOCK_S)
            except Exception:
                log.warning("public cache unreachable; response not kept", exc_info=True)
        response["X-Cache"] = "miss"
        return response
    finally:
        try:
            cache.delete(lock_key)
        except Exception:
            pass
