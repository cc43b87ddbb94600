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
