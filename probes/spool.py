"""Runs performed while the database was unreachable: kept on local disk, stored in order once it is back.

A run has already happened on the platform when it is recorded, so a database that is down at that
moment must not lose it. `run_store_durably` stores a run at once when it can; when the store fails
on a connection-level error it writes the run to the spool (`RUN_SPOOL_DIR`, one JSON file per run
key, written atomically), then waits for the database with backoff for `VIGIE_DB_RETRY_SECONDS`.
One process at a time (a file lock, so every process and thread on this machine) drains the spool,
oldest run first: runs of one placement reach evaluation in the order they started, whatever order
they finished waiting in. While the spool holds anything, a new run joins it instead of jumping
ahead. A run still there after the budget stays on disk and is stored by this machine's workers (the
drain loop below: when a worker starts, then every VIGIE_SPOOL_DRAIN_EVERY seconds) or by its next
run, whichever comes first. Storing is idempotent by run key, so a store that reached the database just before the
connection dropped is not stored twice.

When the spool cannot take a run either (its disk is full or read-only), the run is kept in the
worker's memory instead, in the same order as the spooled ones and drained with them: it survives
the outage unless the worker itself dies before the database is back. Said in the log.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.dispatch import Signal

from probes import drops
from probes.models import Artifact, Run

# Sent inside the transaction that stores new runs, with `runs`: detection evaluates them there
# (detection/apps.py), so a run is never stored without being judged. Probes do not import detection.
runs_stored = Signal()

log = logging.getLogger(__name__)

# Errors that say "the database is not answering": retried, never a reason to drop a run.
DB_DOWN = (OperationalError, InterfaceError)
# A connection-level error while the database answers SELECT 1 is a transient one (a deadlock, a
# lock timeout): retried this many times, then the run is set aside for a person (`failed/`).
TRANSIENT_TRIES = 5
# A drainer looks again at most every second: runs are stored within a second of the database's return.
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 1.0
_TIMES = ("scheduled_for", "started_at", "finished_at")
_ARTIFACT_TIMES = ("created_at", "cleaned_at", "next_attempt_at")


def spool_dir() -> Path:
    return Path(settings.RUN_SPOOL_DIR)


def connection_reset() -> None:
    """Drop a connection a failed query left broken, so the next query opens a fresh one."""
    try:
        connection.close()
    except Exception:  # closing a dead connection may complain; it is closed all the same
        pass


def database_reachable() -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DB_DOWN:
        connection_reset()
        return False


# --- artifacts whose ledger write failed ----------------------------------------------------------

def artifact_state(row: Artifact) -> dict:
    """What the run knows of an artifact the ledger could not be told about (JSON-ready)."""
    state = {"account_id": row.account_id, "probe_id": row.probe_id, "kind": row.kind, "remote_id": row.remote_id,
             "attempts": row.attempts, "last_error": row.last_error}
    for name in _ARTIFACT_TIMES:
        value = getattr(row, name)
        state[name] = value.isoformat() if value else None
    return state


def artifact_restore(*, run_key: str, state: dict) -> None:
    """Put on record, with the run, an artifact the run made while the database was down. Cleaned:
    recorded as cleaned unless a later run owns the row. Not cleaned: the row is (back) to be cleaned,
    owned by this run, as `runner.artifact_record` does, so `cleanup_pending` undoes it."""
    fields = {name: datetime.fromisoformat(state[name]) if state[name] else None for name in _ARTIFACT_TIMES}
    fields.update(attempts=state["attempts"], last_error=state["last_error"])
    row, created = Artifact.objects.get_or_create(
        account_id=state["account_id"], kind=state["kind"], remote_id=state["remote_id"],
        defaults={"run_key": run_key, "probe_id": state["probe_id"], **fields},
    )
    if created:
        return
    if fields["cleaned_at"] is not None and str(row.run_key) != str(run_key):
        return  # gone on the platform as far as this run knows; the row's owner decides for its own
    Artifact.objects.filter(id=row.id).update(run_key=run_key, probe_id=state["probe_id"], **fields)


# --- storing -------------------------------------------------------------------------------------

def _fields(payload: dict) -> dict:
    fields = {k: v for k, v in payload.items() if k != "artifacts"}
    for name in _TIMES:
        fields[name] = datetime.fromisoformat(fields[name])
    return fields


def unsaved_run(payload: dict) -> Run:
    """The run as it will be stored: what a task returns while its run waits in the spool."""
    return Run(**_fields(payload))


def _key(value) -> str:
    return str(uuid.UUID(str(value)))  # one spelling, as the database gives it back


def run_store(payload: dict) -> Run:
    """Store a run once (the key is unique) with the ledger writes it could not make, and evaluate it."""
    try:
        return runs_store([payload])[0]
    except IntegrityError:
        return Run.objects.get(key=payload["key"])  # stored meanwhile, by another delivery of the same run


def runs_store(payloads: list[dict]) -> list[Run]:
    """Store runs in one transaction, each once (by key), with the ledger writes they could not
    make, and evaluate the new ones together (detection.evaluation.runs_evaluate). Returns the runs in
    the order given, those stored earlier (by an earlier delivery, or before a drop) as they are.
    Raises IntegrityError when another process stored one of them meanwhile: nothing is stored then."""
    key = lambda payload: _key(payload["key"])  # noqa: E731
    unique = list({key(p): p for p in payloads}.values())
    with transaction.atomic():
        stored = {_key(r.key): r for r in Run.objects.filter(key__in=[key(p) for p in unique])}
        new = [p for p in unique if key(p) not in stored]
        runs = Run.objects.bulk_create([Run(**_fields(p)) for p in new])
        drops.lateness_add(runs)  # how late each started after its slot (probes.drops)
        for payload in new:
            for state in payload.get("artifacts", ()):
                artifact_restore(run_key=payload["key"], state=state)
        runs_stored.send(sender=Run, runs=runs)  # detection evaluates them (detection/apps.py)
    stored.update((_key(r.key), r) for r in runs)
    return [stored[key(p)] for p in payloads]


def run_store_durably(payload: dict) -> Run:
    """Store a run now, or keep it on disk until the database is back (see the module's docstring).
    Returns the stored run, or an unsaved one when it is left in the spool."""
    if connection.in_atomic_block:
        return run_store(payload)  # the caller's transaction: nothing can be retried inside it
    if not spool_pending():
        try:
            return run_store(payload)
        except DB_DOWN as exc:
            log.warning("database unreachable while storing run %s (%s): keeping it in %s", payload["key"],
                        type(exc).__name__, spool_dir())
            connection_reset()
    spool_keep(payload)
    return spool_wait(payload, deadline=time.monotonic() + settings.VIGIE_DB_RETRY_SECONDS)


def runs_store_durably(payloads: list[dict]) -> list[Run]:
    """`run_store_durably` for the runs of one message, in the order given, with one retry budget
    for them all: each spooled (or kept in memory) before any waits, so a batch whose database is
    down holds its worker VIGIE_DB_RETRY_SECONDS, not that much per run."""
    if len(payloads) <= 1 or connection.in_atomic_block:
        return [run_store_durably(payload) for payload in payloads]
    if not spool_pending():
        try:
            return runs_store(payloads)
        except IntegrityError:  # another delivery stored some meanwhile: each by itself
            return [run_store_durably(payload) for payload in payloads]
        except DB_DOWN as exc:
            log.warning("database unreachable while storing %d runs (%s): keeping them in %s", len(payloads),
                        type(exc).__name__, spool_dir())
            connection_reset()
    for payload in payloads:
        spool_keep(payload)
    deadline = time.monotonic() + settings.VIGIE_DB_RETRY_SECONDS
    return [spool_wait(payload, deadline=deadline) for payload in payloads]


# --- the spool on disk ---------------------------------------------------------------------------

def _path(key: str) -> Path:
    return spool_dir() / f"{key}.json"


# Runs neither the database nor the spool's disk could take, by key: this process's last resort.
_held: dict[str, dict] = {}
_held_lock = threading.Lock()


def spool_pending() -> bool:
    if _held:
        return True
    try:
        return any(entry.name.endswith(".json") for entry in os.scandir(spool_dir()))
    except OSError:  # no folder (nothing spooled yet), or one that cannot be (its disk refused it)
        return False


def spool_holds(key: str) -> dict | None:
    """The payload of a run waiting in the spool (or in memory, when the disk refused it), or None."""
    held = _held.get(key)
    if held is not None:
        return held
    try:
        return json.loads(_path(key).read_text())
    except (OSError, ValueError):
        return None


def spool_write(payload: dict) -> Path:
    """Write a run to the spool atomically (a reader sees the whole file or none) and durably."""
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = _path(payload["key"])
    partial = directory / f".{payload['key']}.tmp"
    try:
        with open(partial, "w") as out:
            json.dump(payload, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # what a full disk let through: an empty or cut file
        raise
    return path


def spool_keep(payload: dict) -> None:
    """Spool a run; when the disk refuses it (full, read-only), keep it in this process's memory."""
    try:
        spool_write(payload)
    except OSError as exc:
        log.error("the spool cannot take run %s (%s): kept in this worker's memory until the database is "
                  "back (lost if the worker dies first)", payload["key"], exc)
        with _held_lock:
            _held[payload["key"]] = payload


def _waiting(key: str) -> bool:
    return key in _held or _path(key).exists()


def _entries() -> list[tuple[Path | None, dict]]:
    """Spooled runs, oldest start first (ties by key, so every drainer agrees); those kept in memory
    (no path) among them."""
    with _held_lock:
        entries = [(datetime.fromisoformat(payload["started_at"]), f"{key}.json", None, payload)
                   for key, payload in _held.items()]
    for path in spool_dir().glob("*.json"):
        try:
            payload = json.loads(path.read_text())
            started_at = datetime.fromisoformat(payload["started_at"])
        except FileNotFoundError:
            continue  # stored by another process meanwhile
        except (ValueError, KeyError, TypeError):
            _set_aside(path, "not a spooled run")
            continue
        entries.append((started_at, path.name, path, payload))
    return [(path, payload) for *_, path, payload in sorted(entries, key=lambda entry: entry[:2])]


def _done(path: Path | None, payload: dict) -> None:
    """A run stored (or set aside): off the spool, or out of memory."""
    if path is None:
        with _held_lock:
            _held.pop(payload["key"], None)
    else:
        path.unlink(missing_ok=True)


def _set_aside(path: Path | None, why: str, payload: dict | None = None) -> None:
    if path is None:  # kept in memory: the disk refused it, so the log is where it is set aside
        log.error("run %s kept in memory cannot be stored (%s): dropped: %s", payload["key"], why,
                  json.dumps(payload, default=str)[:2000])
        _done(None, payload)
        return
    failed = spool_dir() / "failed"
    failed.mkdir(exist_ok=True)
    os.replace(path, failed / path.name)
    log.error("spooled run %s cannot be stored (%s): moved to %s for a person to look at", path.stem, why, failed)


_local_drain_lock = threading.Lock()


@contextmanager
def _drain_lock() -> Iterator[bool]:
    """The spool's lock, if free: one drainer per machine, so the oldest run is always stored first.
    When the spool's disk cannot even hold the lock file (full), this process's own lock: the runs
    kept in memory are this process's alone."""
    try:
        spool_dir().mkdir(parents=True, exist_ok=True)
        handle = open(spool_dir() / ".lock", "a")
    except OSError:
        if not _local_drain_lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            _local_drain_lock.release()
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spool_drain(*, deadline: float) -> int:
    """Store the spooled runs, oldest first, waiting for the database with backoff until `deadline`
    (time.monotonic()). Returns how many were stored; 0 at once when another drainer is at work."""
    stored, outage, tries = 0, 0, defaultdict(int)
    with _drain_lock() as locked:
        if not locked:
            return 0
        while True:
            entries = _entries()
            if not entries:
                return stored
            path, payload = entries[0]  # re-read each time: an older run may have been spooled meanwhile
            name = path.name if path is not None else f"{payload['key']}.json"
            try:
                run_store(payload)
            except DB_DOWN as exc:
                connection_reset()
                if database_reachable():
                    tries[name] += 1
                    if tries[name] >= TRANSIENT_TRIES:
                        _set_aside(path, f"{type(exc).__name__}: {exc}"[:300], payload)
                    time.sleep(BACKOFF_FIRST * tries[name])
                    continue
                pause = min(BACKOFF_FIRST * 2 ** outage, BACKOFF_MAX)
                outage += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return stored
                time.sleep(min(pause, remaining))
                continue
            except Exception as exc:  # a run that can never be stored (its probe was deleted…): keep it
                log.exception("storing spooled run %s failed", payload.get("key"))
                _set_aside(path, f"{type(exc).__name__}: {exc}"[:300], payload)
                continue
            _done(path, payload)
            stored += 1
            outage = 0


def spool_wait(payload: dict, *, deadline: float) -> Run:
    """Wait until a spooled run is stored, draining the spool when no one else is, until `deadline`."""
    key = payload["key"]
    while True:
        spool_drain(deadline=deadline)
        stored = not _waiting(key)
        if stored:
            try:
                return Run.objects.get(key=key)
            except Run.DoesNotExist:  # set aside (failed/): logged there
                return unsaved_run(payload)
            except DB_DOWN:  # this thread's connection died in the outage (or it is down again)
                connection_reset()
        if time.monotonic() >= deadline:
            if stored:
                return unsaved_run(payload)
            log.warning("database still unreachable after %s s: run %s stays in %s and is stored by the next "
                        "run recorded on this machine", settings.VIGIE_DB_RETRY_SECONDS, key, spool_dir())
            return unsaved_run(payload)
        time.sleep(0.2)


def spooled_run(key: str) -> Run | None:
    """A run a redelivered task would perform again while it waits in the spool: wait for it instead."""
    payload = spool_holds(key)
    if payload is None:
        return None
    return spool_wait(payload, deadline=time.monotonic() + settings.VIGIE_DB_RETRY_SECONDS)


# --- draining at worker start and on a timer -------------------------------------------------------

class DrainLoop(threading.Thread):
    """A worker's main process drains its machine's spool when it starts, then every
    VIGIE_SPOOL_DRAIN_EVERY seconds while runs wait there: runs spooled during an outage are
    stored without waiting for the next run on this machine. A spool is local to its machine, so
    this is done by every worker rather than by a task that any one worker would take."""

    def __init__(self) -> None:
        super().__init__(name="vigie-spool-drain", daemon=True)
        self._stop_event = threading.Event()

    def run(self) -> None:
        every = settings.VIGIE_SPOOL_DRAIN_EVERY
        while True:
            try:
                if spool_pending():
                    stored = spool_drain(deadline=time.monotonic() + every)
                    if stored:
                        log.info("stored %d spooled run(s)", stored)
            except Exception:  # the loop outlives anything one pass meets
                log.exception("draining the spool failed")
                connection_reset()
            if self._stop_event.wait(every):
                connection_reset()
                return

    def stop(self) -> None:
        self._stop_event.set()


_drain_loop: DrainLoop | None = None


def drain_loop_start() -> DrainLoop:
    global _drain_loop
    if _drain_loop is None or not _drain_loop.is_alive():
        _drain_loop = DrainLoop()
        _drain_loop.start()
    return _drain_loop


def drain_loop_stop() -> None:
    global _drain_loop
    if _drain_loop is not None:
        _drain_loop.stop()
        _drain_loop = None
