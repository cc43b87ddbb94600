"""The Redis cache backend: Django's, with one client per connection pool."""
from __future__ import annotations

import threading

import pytest
from django.conf import settings

from vigie.redis_cache import RedisCache


def test_every_call_gets_the_same_client():
    backend = RedisCache("redis://127.0.0.1:1/0", {})  # nothing listens there: making a client connects nowhere
    client = backend._cache.get_client()
    assert backend._cache.get_client("key") is client and backend._cache.get_client(write=True) is client


@pytest.mark.skipif(not settings.CACHE_URL.startswith("redis"), reason="needs Redis (VIGIE_CACHE_URL)")
def test_threads_sharing_the_client_each_read_their_own_keys():
    backend = RedisCache(settings.CACHE_URL, {"KEY_PREFIX": "vigie-test-client"})
    errors = []

    def one(n: int):
        for i in range(50):
            backend.set(f"k{n}", (n, i), timeout=30)
            if backend.get(f"k{n}") != (n, i):
                errors.append((n, i))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    backend.delete_many([f"k{n}" for n in range(8)])
    assert not errors
