"""The runs a worker process keeps in flight: a pool of threads, each performing one run at a time.

A run spends nearly all its time waiting on the platform, so a worker performs the runs of a
message side by side (probes.runner.runs_execute), up to VIGIE_RUNS_IN_FLIGHT per process. The
pool is made on first use in each process (a forked pool process makes its own: threads do not
follow a fork). Its threads keep their database connection from one run to the next, tidied by
Django's rules (CONN_MAX_AGE, a connection an error left broken) before each run, as Celery does
before each task (vigie/celery.py).

Only Celery workers use the pool (`enable`, on `worker_init`). Anywhere else — a management
command, a test inside its transaction — the runs are performed one after the other in the
caller's thread, which then sees the caller's transaction.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection

log = logging.getLogger(__name__)
T = TypeVar("T")

_enabled = False
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def _after_fork() -> None:
    # A lock held by another thread at the fork would never be released in the child.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def enable() -> None:
    global _enabled
    _enabled = True


def _this_process() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=settings.VIGIE_RUNS_IN_FLIGHT, thread_name_prefix="vigie-run")
            _pool_pid = os.getpid()
        return _pool


def _in_pool_thread(job: Callable[[], T]) -> T:
    close_old_connections()
    return job()


def perform_all(jobs: list[Callable[[], T]]) -> list[T]:
    """Call every job, side by side in a worker; the results in the order of `jobs`. A job that
    raises does not stop the others: each is logged, and the first is raised once all are done."""
    if not (_enabled and len(jobs) > 1 and not connection.in_atomic_block):
        return [job() for job in jobs]
    futures = [_this_process().submit(_in_pool_thread, job) for job in jobs]
    results, first_error = [], None
    for future in futures:
        try:
            results.append(future.result())
        except Exception as exc:
            log.exception("a run failed outside its adapter")
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return results
