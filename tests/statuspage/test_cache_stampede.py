"""Many requests at once after a change: one renders, the others get the earlier copy or wait for
the new one. Run against the configured cache backend (the file cache of the embedded default, or
Redis in CI's second leg), with real threads."""
from __future__ import annotations

import threading
import time

from django.http import HttpResponse
from django.test import RequestFactory

from statuspage.cache import cached, public_changed

THREADS = 16


def counting_view(state: dict):
    def view(request):
        with state["lock"]:
            state["renders"] += 1
            version = state["renders"]
        time.sleep(0.3)  # a render that takes a while: the window a stampede would fill
        return HttpResponse(f"render {version}", content_type="text/plain")
    return view


def at_once(wrapped, path: str = "/stampede-test") -> list:
    request_factory, barrier, results = RequestFactory(), threading.Barrier(THREADS), []

    def one():
        barrier.wait()
        response = wrapped(request_factory.get(path))
        results.append((response["X-Cache"], response.content.decode()))

    threads = [threading.Thread(target=one) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_many_requests_after_a_change_cause_one_render(public_cache, settings):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 60
    state = {"renders": 0, "lock": threading.Lock()}
    wrapped = cached(counting_view(state))

    first = at_once(wrapped)
    assert state["renders"] == 1
    # No earlier copy: the others waited for the one render and got it.
    assert sorted(kind for kind, _ in first) == ["hit"] * (THREADS - 1) + ["miss"]
    assert {body for _, body in first} == {"render 1"}

    public_changed()  # a status changed: every cached page is old
    second = at_once(wrapped)
    assert state["renders"] == 2
    # Meanwhile the others got the copy from before the change, said to be stale, at once.
    assert sorted(kind for kind, _ in second) == ["miss"] + ["stale"] * (THREADS - 1)
    assert {body for kind, body in second if kind == "stale"} == {"render 1"}
    assert wrapped(RequestFactory().get("/stampede-test")).content == b"render 2"


def renders_behind_finish() -> None:
    """Wait for the renders started off the request path (statuspage.cache._render_behind)."""
    for thread in threading.enumerate():
        if thread.name.startswith("vigie render "):
            thread.join(30)
            assert not thread.is_alive()


def test_after_a_change_the_render_runs_behind_and_no_request_waits_for_it(public_cache, settings):
    settings.VIGIE_PUBLIC_CACHE_SECONDS, settings.VIGIE_PUBLIC_STALE_SECONDS = 60, 5
    state = {"renders": 0, "lock": threading.Lock()}
    wrapped = cached(counting_view(state))
    first = at_once(wrapped)
    # No copy from before: there is nothing else to answer, so one renders and the others wait for it.
    assert sorted(kind for kind, _ in first) == ["hit"] * (THREADS - 1) + ["miss"]

    public_changed()
    second = at_once(wrapped)
    # Every request, the one that started the render too, got the copy from before at once.
    assert second == [("stale", "render 1")] * THREADS
    renders_behind_finish()
    assert state["renders"] == 2  # one render for the whole burst
    after = wrapped(RequestFactory().get("/stampede-test"))
    assert (after["X-Cache"], after.content) == ("hit", b"render 2")


def test_the_copy_from_before_is_served_no_longer_than_the_bound(public_cache, settings, monkeypatch):
    from statuspage import cache as public

    settings.VIGIE_PUBLIC_CACHE_SECONDS, settings.VIGIE_PUBLIC_STALE_SECONDS = 60, 5
    monkeypatch.setattr(public, "WAIT_FOR_RENDER_S", 0.2)
    release, renders = threading.Event(), []

    def view(request):
        renders.append(1)
        if len(renders) == 2:
            release.wait(30)  # the render behind hangs
        return HttpResponse(f"render {len(renders)}", content_type="text/plain")

    wrapped = cached(view)
    assert wrapped(RequestFactory().get("/slow")).content == b"render 1"
    public_changed()
    assert wrapped(RequestFactory().get("/slow"))["X-Cache"] == "stale"  # it started the render behind
    assert wrapped(RequestFactory().get("/slow"))["X-Cache"] == "stale"  # within the bound
    # The render began longer ago than the bound: the old copy is no longer an answer.
    from django.utils.translation import get_language

    public_cache.set(f"vigie:render:{get_language()}:/slow", time.time() - 6, timeout=60)
    late = wrapped(RequestFactory().get("/slow"))
    assert late["X-Cache"] == "miss" and late.content == b"render 3"
    release.set()
    renders_behind_finish()


def test_a_page_gone_since_the_change_is_not_served_from_the_copy_before(public_cache, settings):
    settings.VIGIE_PUBLIC_CACHE_SECONDS, settings.VIGIE_PUBLIC_STALE_SECONDS = 60, 5
    exists = {"page": True}

    def view(request):
        if exists["page"]:
            return HttpResponse("the incident", content_type="text/plain")
        return HttpResponse("gone", status=404, content_type="text/plain")

    wrapped = cached(view)
    assert wrapped(RequestFactory().get("/incidents/x")).status_code == 200
    exists["page"] = False
    public_changed()
    assert wrapped(RequestFactory().get("/incidents/x"))["X-Cache"] == "stale"
    renders_behind_finish()
    # The render behind found nothing to keep: the next request renders in its own turn.
    assert wrapped(RequestFactory().get("/incidents/x")).status_code == 404


def test_publish_never_takes_the_copy_from_before_a_change(public_cache, settings):
    from statuspage.cache import current_copies

    settings.VIGIE_PUBLIC_CACHE_SECONDS, settings.VIGIE_PUBLIC_STALE_SECONDS = 60, 5
    state = {"renders": 0, "lock": threading.Lock()}
    wrapped = cached(counting_view(state))
    assert wrapped(RequestFactory().get("/published")).content == b"render 1"
    public_changed()
    with current_copies():  # what statuspage.publish renders the static copy within
        response = wrapped(RequestFactory().get("/published"))
    assert (response["X-Cache"], response.content) == ("miss", b"render 2")
    public_changed()
    assert wrapped(RequestFactory().get("/published"))["X-Cache"] == "stale"  # a reader: the render goes behind
    with current_copies():  # publish meanwhile waits for that render, and takes it
        response = wrapped(RequestFactory().get("/published"))
    assert (response["X-Cache"], response.content) == ("hit", b"render 3")
    renders_behind_finish()
