"""Group commit of runs: in a worker, the runs that finish together are stored and evaluated together.

A worker keeps many runs in flight (probes are I/O-bound). Storing each run in its own transaction
would take its platform's lock, its placement's, its components' and its rollup rows' once per run,
and every worker would queue on those locks. Here one thread per worker process stores: it takes
the runs finished within BATCH_WINDOW_S of the first one waiting and stores them as one batch
(spool.runs_store). A batch costs about 10 ms of CPU whatever its size, plus 0.4 ms per run
(PostgreSQL, 50 components): storing whatever finished since the last commit made batches of one
or two runs at 160 runs/s, and most of a run's cost. The window adds at most that much to the
time a run takes to reach the page. Each task still waits until its own runs are stored before
it returns, so a run is acknowledged to the broker only once it is on record.

Whatever the batch cannot do — the database is away, the spool holds older runs, another process
stored one of the runs meanwhile, a run the evaluation chokes on — it hands back, and each task
stores its run by itself as before (spool.run_store_durably): a batch never loses or reorders runs.

Only Celery workers batch (`enable`, on `worker_init`); a run executed anywhere else (a management
command, a test) is stored directly, in the caller's thread and transaction.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from probes import spool
from probes.models import Run

log = logging.getLogger(__name__)

BATCH_MAX = 200
BATCH_WINDOW_S = 0.3

_enabled = False
_lock = threading.Lock()
_recorder: "Recorder | None" = None


def enable() -> None:
    global _enabled
    _enabled = True


def store(payload: dict) -> Run:
    """Store a finished run: with this worker's batch when batching, else at once (durably)."""
    return store_all([payload])[0]


def store_all(payloads: list[dict]) -> list[Run]:
    """Store finished runs, in the order given: with this worker's batch when batching, else each
    at once (durably). Returns when every one is stored (or waits in the spool)."""
    if not (_enabled and payloads and not connection.in_atomic_block):
        return spool.runs_store_durably(payloads)
    items = _this_process().submit(payloads)
    # The runs the batch did not store, stored by this caller (one retry budget for them all), in order.
    alone = iter(spool.runs_store_durably([item.payload for item in items if item.run is None]))
    return [item.run if item.run is not None else next(alone) for item in items]


def _this_process() -> "Recorder":
    """The recorder of this process: a forked pool process makes its own (threads do not fork)."""
    global _recorder
    with _lock:
        if _recorder is None or _recorder.pid != os.getpid():
            _recorder = Recorder()
        return _recorder


@dataclass
class _Item:
    payload: dict
    done: threading.Event = field(default_factory=threading.Event)
    run: Run | None = None  # None once done: store it yourself


class Recorder:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.batches = 0
        self.stored = 0
        threading.Thread(target=self._loop, name="vigie-recorder", daemon=True).start()

    def submit(self, payloads: list[dict]) -> list[_Item]:
        """Queue the runs and wait until their batch is done: an item's `run` is the stored run, or
        None when the caller must store it itself."""
        items = [_Item(payload) for payload in payloads]
        for item in items:
            self._queue.put(item)
        # A batch that hangs (a lock never granted) must not hold the run forever: past this the
        # caller stores it itself; storing is idempotent by key, whichever store comes first.
        deadline = time.monotonic() + settings.VIGIE_DB_RETRY_SECONDS + 60
        for item in items:
            if not item.done.wait(timeout=max(0.0, deadline - time.monotonic())):
                log.warning("run %s waited too long for its batch; storing it alone", item.payload["key"])
        return items

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            closes = time.monotonic() + BATCH_WINDOW_S
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, closes - time.monotonic())))
                except queue.Empty:
                    break
            try:
                self._store(batch)
            except BaseException:  # never let the thread die: its callers would all wait out their timeout
                log.exception("storing a batch of %d runs failed; each is stored alone", len(batch))
            finally:
                for item in batch:
                    item.done.set()

    def _store(self, batch: list[_Item]) -> None:
        # This thread's connection lives as long as the process: treat each batch as Django treats
        # a request (CONN_MAX_AGE, health checks, a connection an error left broken).
        connection.close_if_unusable_or_obsolete()
        if spool.spool_pending():
            return  # older runs wait on disk: new ones queue behind them, each by itself
        try:
            runs = spool.runs_store([item.payload for item in batch])
        except spool.DB_DOWN as exc:  # down, or a transient error (a deadlock): each store retries its own
            log.warning("could not store a batch of %d runs (%s: %s); each is stored alone", len(batch),
                        type(exc).__name__, str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "")
            spool.connection_reset()
            return
        except Exception:  # each store by itself says what is wrong, with only its own run held up
            log.info("a batch of %d runs could not be stored together; storing each alone", len(batch),
                     exc_info=True)
            return
        for item, run in zip(batch, runs):
            item.run = run
        self.batches += 1
        self.stored += len(batch)
