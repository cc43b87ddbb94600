"""Each process's copies in memory: a read between two changes asks the shared cache for the
version alone, and at most every VERSION_CHECK_S; a change made in this process is served at once,
one made in another within VERSION_CHECK_S; only a few pages are kept. Run against the configured
cache backend (the file cache, or Redis in CI's second leg)."""
from __future__ import annotations

import threading
import time

import pytest
import time_machine
from django.http import HttpResponse
from django.test import RequestFactory

from statuspage import cache as public
from statuspage.cache import VERSION_KEY, Kept, Memory, cached, public_changed

LIFETIME = 30


class SharedCacheSpy:
    """The shared cache, noting which keys are read from it."""

    def __init__(self, cache):
        self._cache = cache
        self.reads: list[str] = []

    def get(self, key, *args, **kwargs):
        self.reads.append(key)
        return self._cache.get(key, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cache, name)


@pytest.fixture
def shared(public_cache, settings, monkeypatch) -> SharedCacheSpy:
    """The shared cache, spied on. The version is read on every request here (VERSION_CHECK_S 0),
    except in the tests of that check, which set it back."""
    settings.VIGIE_PUBLIC_CACHE_SECONDS = LIFETIME
    spy = SharedCacheSpy(public_cache)
    monkeypatch.setattr(public, "cache", spy)
    monkeypatch.setattr(public, "VERSION_CHECK_S", 0)
    return spy


@pytest.fixture
def page():
    """A view counting its renders, cached: `page()` requests it and answers (X-Cache, body)."""
    state = {"renders": 0, "gate": None}

    def view(request):
        state["renders"] += 1
        number = state["renders"]
        if state["gate"] is not None:
            state["gate"].wait(10)
        return HttpResponse(f"render {number}", content_type="text/plain")

    wrapped = cached(view)

    def get(path: str = "/memory-test") -> tuple[str | None, str]:
        response = wrapped(RequestFactory().get(path))
        return response.get("X-Cache"), response.content.decode()

    get.state = state
    return get


def another_process(monkeypatch) -> tuple:
    """From here on, this test's requests come from a process with nothing in memory yet; returns
    what this one kept, to come back to it."""
    mine = (public.memory, public._seen)
    monkeypatch.setattr(public, "memory", Memory())
    monkeypatch.setattr(public, "_seen", public._Seen())
    return mine


def back_to(kept: tuple, monkeypatch) -> None:
    monkeypatch.setattr(public, "memory", kept[0])
    monkeypatch.setattr(public, "_seen", kept[1])


def test_a_read_between_two_changes_asks_the_shared_cache_for_the_version_alone(shared, page):
    assert page() == ("miss", "render 1")
    shared.reads.clear()
    assert page() == ("hit", "render 1")
    assert page() == ("hit", "render 1")
    assert shared.reads == [VERSION_KEY, VERSION_KEY]


def test_a_change_made_in_another_process_is_served_at_once(shared, page, public_cache):
    assert page() == ("miss", "render 1")
    # Another process announces a change: only the version in the shared cache moves.
    public_cache.incr(VERSION_KEY)
    assert page() == ("miss", "render 2")
    assert page() == ("hit", "render 2")


def test_a_copy_another_process_rendered_is_fetched_once_then_kept(shared, page, public_cache, monkeypatch):
    assert page() == ("miss", "render 1")
    public_changed()
    mine = another_process(monkeypatch)
    assert page() == ("miss", "render 2")  # rendered over there, kept in the shared cache
    back_to(mine, monkeypatch)  # back in this process, render 1 in memory
    shared.reads.clear()
    assert page() == ("hit", "render 2")
    assert any(key.startswith("vigie:kept:") for key in shared.reads)
    shared.reads.clear()
    assert page() == ("hit", "render 2")
    assert shared.reads == [VERSION_KEY]
    assert page.state["renders"] == 2


def test_a_copy_in_memory_is_not_served_past_the_lifetime(shared, page):
    with time_machine.travel(time.time(), tick=False) as clock:
        assert page() == ("miss", "render 1")
        clock.shift(LIFETIME - 1)
        shared.reads.clear()
        assert page() == ("hit", "render 1")
        assert shared.reads == [VERSION_KEY]
        clock.shift(2)
        shared.reads.clear()
        page()
        # Past its lifetime the copy in memory is not used: the shared cache is asked for the page
        # (whose own expiry Redis keeps by its own clock, which time_machine does not move).
        assert any(key.startswith("vigie:kept:") for key in shared.reads)


def test_the_copy_from_before_a_change_is_served_from_memory_while_another_request_renders(shared, page):
    assert page() == ("miss", "render 1")
    public_changed()
    page.state["gate"] = threading.Event()
    rendering = threading.Thread(target=page)
    rendering.start()
    try:
        deadline = time.monotonic() + 5
        while page.state["renders"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        shared.reads.clear()
        assert page() == ("stale", "render 1")
        assert not any(key.startswith("vigie:kept:last:") for key in shared.reads)
    finally:
        page.state["gate"].set()
        rendering.join(10)
    assert page() == ("hit", "render 2")


def test_only_a_few_pages_are_kept_in_memory(shared, page):
    paths = [f"/memory-test/{i}" for i in range(public.MEMORY_ENTRIES + 1)]
    for path in paths:
        assert page(path)[0] == "miss"
    assert len(public.memory) == public.MEMORY_ENTRIES
    shared.reads.clear()
    assert page(paths[-1]) == ("hit", f"render {len(paths)}")
    assert shared.reads == [VERSION_KEY]
    # The first page was let go: it comes from the shared cache again, not rendered again.
    assert page(paths[0]) == ("hit", "render 1")
    assert any(key.startswith("vigie:kept:") for key in shared.reads[1:])
    assert page.state["renders"] == len(paths)


def test_the_least_recently_used_page_goes_first():
    memory = Memory(size=2)
    kept = Kept(200, b"", {}, time.time())
    memory.put("a", 1, kept)
    memory.put("b", 1, kept)
    memory.get("a")
    memory.put("c", 1, kept)
    assert memory.get("b") is None and memory.get("a") and memory.get("c") and len(memory) == 2


def test_between_two_version_checks_a_read_asks_the_shared_cache_nothing(shared, page, monkeypatch):
    monkeypatch.setattr(public, "VERSION_CHECK_S", 0.3)
    assert page() == ("miss", "render 1")
    shared.reads.clear()
    assert page() == ("hit", "render 1")
    assert shared.reads == []
    time.sleep(0.35)
    assert page() == ("hit", "render 1")
    assert shared.reads == [VERSION_KEY]


def test_a_change_made_in_another_process_shows_within_the_version_check(shared, page, public_cache, monkeypatch):
    monkeypatch.setattr(public, "VERSION_CHECK_S", 0.3)
    assert page() == ("miss", "render 1")
    public_cache.incr(VERSION_KEY)  # another process's change: only the shared version moves
    assert page() == ("hit", "render 1")  # not seen yet: this process read the version just now
    time.sleep(0.35)
    assert page() == ("miss", "render 2")


def test_a_change_made_in_this_process_shows_at_once(shared, page, monkeypatch):
    monkeypatch.setattr(public, "VERSION_CHECK_S", 30)
    assert page() == ("miss", "render 1")
    public_changed()
    assert page() == ("miss", "render 2")


def test_memory_is_not_served_when_the_cache_server_is_down(shared, page, settings):
    assert page() == ("miss", "render 1")
    # Nothing listens there: the version cannot be read, so a change may have gone unseen.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}
    assert page() == (None, "render 2")
