"""Each pytest-xdist worker gets resources of its own, so that `pytest -n N` runs tests side by side
without one worker reading, stealing or wiping another's state (pytest.ini loads this with
`-p tests.isolation`, before pytest-django reads the settings).

What is per worker (gwN), and how:
- VIGIE_DATA_DIR: <data dir>/xdist-gwN — the SQLite test database, the filesystem broker's folders,
  the run spool, the file cache, the secret key, whatever the subprocesses tests start (Celery
  workers, beat, gunicorn) keep there: they inherit the environment.
- CELERY_BROKER_URL and VIGIE_CACHE_URL, when they are Redis URLs: their database number less 2·N,
  so that gw0 keeps the configured ones (15 and 14 in .ci/run), gw1 gets 13 and 12, and so on. A
  real Celery worker a test starts consumes only its own xdist worker's queues: two tests using the
  same location name (hence the same queue) in two workers never take each other's tasks, and one
  worker's `cache.clear()` never empties another's cache.
- The PostgreSQL test database: pytest-django already names it test_<name>_gwN.
- Ports: tests bind port 0 or ask the system for free ones; none listens on a fixed port.

Tests that must not run beside another of the same kind are marked `xdist_group("...")` and run
with `--dist loadgroup` (the Makefile's), each group in one worker.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Redis numbers its databases 0-15 by default; one step of 2 per worker keeps broker and cache apart.
REDIS_DATABASES = 16
STEP = 2


def worker_index() -> int | None:
    """gw0 → 0, gw1 → 1, …; None outside xdist (plain `pytest`, or xdist's controlling process)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    found = re.fullmatch(r"gw(\d+)", name)
    return int(found.group(1)) if found else None


def redis_for_worker(url: str, index: int) -> str:
    """The same Redis URL with its database number moved down by STEP·index."""
    match = re.fullmatch(r"(rediss?://[^/?#]*)(?:/(\d*))?(\?.*)?", url)
    if not match:
        return url
    base = int(match.group(2) or 0)
    number = base - STEP * index
    if number < 0:  # more workers than the numbers below the base: go round from the top
        number %= REDIS_DATABASES
    return f"{match.group(1)}/{number}{match.group(3) or ''}"


def isolate(environ=os.environ) -> dict[str, str]:
    """Points this worker's environment at its own resources; returns what it changed."""
    index = worker_index()
    if index is None:
        return {}
    name = f"xdist-gw{index}"
    changed = {}
    data = Path(environ.get("VIGIE_DATA_DIR") or ROOT / "var")
    changed["VIGIE_DATA_DIR"] = str(data / name)
    for variable in ("CELERY_BROKER_URL", "VIGIE_CACHE_URL"):
        url = environ.get(variable, "")
        if url.startswith("redis"):
            changed[variable] = redis_for_worker(url, index)
    environ.update(changed)
    Path(changed["VIGIE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    return changed


# At import: `-p tests.isolation` imports this before pytest-django configures Django, so the
# settings module reads the worker's own values.
ISOLATED = isolate()


def pytest_report_header(config):
    if ISOLATED:
        return "xdist isolation: " + ", ".join(f"{key}={value}" for key, value in sorted(ISOLATED.items()))
    return None


# Modules holding tests that run for tens of seconds each (real processes for their whole length,
# long simulations, the browser tests' site), longest first. `--dist loadgroup` hands tests out in
# collection order once the serial "faults" group (the largest) has gone to one process: these go
# first to the other, so that the last tests handed out are short ones and both processes finish
# together instead of one waiting on a 90 s test started near the end. Only the order changes.
LONG_FIRST = (
    "tests/test_up.py",
    "tests/detection/test_detection.py",
    "tests/probes/test_cleanup_ledger.py",
    "tests/detection/test_scenarios_truth.py",
    "tests/statuspage/test_browser.py",
    "tests/test_layout_migration.py",
    "tests/oncall/test_config_fuzz.py",
)


def _long_first(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which names the group on the item
def pytest_collection_modifyitems(config, items):
    """`--dist loadgroup` for pytest ≥ 9.2: pytest-xdist 3.8 marks a test's group by setting
    `item._nodeid` to "<nodeid>@<group>", but pytest 9.2 reads node ids from `item._id`, so the
    group was lost and grouped tests spread over every worker. Put the suffix where it is read."""
    if worker_index() is None or not getattr(config.option, "loadgroup", False):
        return
    items.sort(key=_long_first)  # stable: the rest keep their order
    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid and hasattr(item, "_id"):
            from _pytest.nodeid import coerce_node_id

            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")
