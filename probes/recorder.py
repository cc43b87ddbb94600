"""Group commit of runs: in a worker, the runs that finish together are stored and evaluated together.

A worker keeps many runs in flight (probes are I/O-bound). Storing each run in its own transaction
would take its platform's lock, its placement's, its components' and its rollup rows' once per run,
and every worker would queue on those locks. Here one thread per worker process stores: it takes
every run finished since its last commit and stores them as one batch (spool.runs_store), so at
low load a batch is one run and nothing waits, and under load batches grow by themselves with the
time a commit takes. Each task still waits until its own run is stored before it returns, so a run
is acknowledged to the broker only once it is on record.

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
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from probes import spool
from probes.models import Run

log = logging.getLogger(__name__)

BATCH_MAX = 100

_enabled = False
_lock = threading.Lock()
_recorder: "Recorder | None" = None


def enable() -> None:
    global _enabled
    _enabled = True


def store(payload: dict) -> Run:
    """Store a finished run: with this worker's batch when batching, else at once (durably)."""
    if _enabled and not connection.in_atomic_block:
        run = _this_process().submit(payload)
        if run is not None:
            return run
    return spool.run_store_durably(payload)


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

    def submit(self, payload: dict) -> Run | None:
        """The stored run, or None when the caller must store it itself."""
        item = _Item(payload)
        self._queue.put(item)
        # A batch that hangs (a lock never granted) must not hold the run forever: past this the
        # caller stores it itself; storing is idempotent by key, whichever store comes first.
        if not item.done.wait(timeout=settings.VIGIE_DB_RETRY_SECONDS + 60):
            log.warning("run %s waited too long for its batch; storing it alone", payload["key"])
        return item.run

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
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
