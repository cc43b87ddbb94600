"""What on-call sees of Vigie's own faults: which dependency is down (database, cache, broker, each
checked with a short timeout), the dead letters, the runs dropped and how late runs start."""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from probes import drops
from probes.deadletter import dead_letters

CHECK_TIMEOUT_S = 2.0
DROPS_HOURS = 24
LATENESS_HOURS = 1


@dataclass
class Dependency:
    name: str
    up: bool
    detail: str
    ms: int


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "answers"
    finally:
        connection.close()  # this check's own thread: its connection goes with it


def _cache() -> str:
    key = "vigie:health:cache"
    cache.set(key, 1, timeout=30)
    if cache.get(key) != 1:
        raise RuntimeError("a value written cannot be read back")
    return "answers"


def _broker() -> str:
    from celery import current_app

    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=CHECK_TIMEOUT_S)
        return f"{conn.transport_cls} answers"


CHECKS = {"database": _database, "cache": _cache, "broker": _broker}
_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="vigie-health")


def _timed(check) -> tuple[str, int]:
    began = time.monotonic()
    detail = check()
    return detail, int((time.monotonic() - began) * 1000)


def dependencies(timeout: float = CHECK_TIMEOUT_S) -> list[Dependency]:
    """Each dependency checked side by side; one that does not answer within `timeout` is down.
    The error named is the exception's type and first line: never a URL (it may hold a password)."""
    futures = {name: _pool.submit(_timed, check) for name, check in CHECKS.items()}
    wait(futures.values(), timeout=timeout)
    found = []
    for name, future in futures.items():
        if not future.done():
            found.append(Dependency(name, False, f"no answer within {timeout:g} s", int(timeout * 1000)))
            continue
        try:
            detail, ms = future.result()
            found.append(Dependency(name, True, detail, ms))
        except Exception as exc:  # any failure is "down", said by its type
            first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
            found.append(Dependency(name, False, f"{type(exc).__name__}{': ' + _no_urls(first) if first else ''}", 0))
    return found


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def _no_urls(text: str) -> str:
    """An error's words without any URL in them (a broker or cache URL may hold a password)."""
    return _URL.sub("[url]", text)


def bound_text(seconds: float | None) -> str:
    """A percentile read from the lateness histogram, in words: at most its bucket's bound."""
    if seconds is None:
        return "no run"
    if seconds == float("inf"):
        return f"over {drops.LATENESS_BOUNDS_S[-1]:g} s"
    return f"≤ {seconds * 1000:g} ms" if seconds < 1 else f"≤ {seconds:g} s"


def lateness(now: datetime, hours: int = LATENESS_HOURS) -> dict:
    """How late runs started after their slot over the last `hours`: p50 and p99, as bounds."""
    histogram = drops.lateness_histogram(since=now - timedelta(hours=hours))
    return {"runs": sum(histogram.values()), "p50": bound_text(drops.lateness_percentile(histogram, 0.5)),
            "p99": bound_text(drops.lateness_percentile(histogram, 0.99)), "hours": hours}


def context(now: datetime) -> dict:
    """The dashboard's "Vigie's own faults" section."""
    return {"dependencies": dependencies(), "dead_letters": dead_letters(),
            "dropped_runs": drops.drops_recent(hours=DROPS_HOURS, now=now), "drops_hours": DROPS_HOURS,
            "lateness": lateness(now), "max_deliveries": settings.VIGIE_TASK_MAX_DELIVERIES}
