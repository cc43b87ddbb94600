"""Tasks that poison their worker, or hold it, loaded only by the workers the fault tests start
(`celery worker --include tests.faults.poison_tasks`: test_poison.py, test_broker_down.py). Each
appends a line to `journal` when it starts, so the test counts the deliveries that reached the
task's code."""
from __future__ import annotations

import os
import time
from pathlib import Path

from celery import shared_task

from probes.deadletter import GuardedTask


@shared_task(name="tests.poison.crash", base=GuardedTask, acks_late=True, ignore_result=True, time_limit=30,
             soft_time_limit=25)
def crash(how: str, journal: str, secret: str = "") -> str:
    """`exit`: the process dies mid-task (the OOM killer, a crash in C); `raise`: an exception. A
    file `<journal>.heal` makes it succeed instead (the bug was fixed, on-call retries)."""
    with open(journal, "a") as out:
        out.write(f"{how} {os.getpid()}\n")
    if Path(journal + ".heal").exists():
        return "healed"
    if how == "exit":
        os._exit(1)
    raise RuntimeError(f"poisoned by {secret or 'nothing'}")


@shared_task(name="tests.faults.hold", acks_late=True, ignore_result=True, time_limit=120, soft_time_limit=110)
def hold(journal: str, release: str) -> str:
    """Held by the worker, unacknowledged (acknowledged late, as every run is), until the file
    `release` exists; `start` and `done` go to `journal`."""
    with open(journal, "a") as out:
        out.write("start\n")
    deadline = time.monotonic() + 100
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with open(journal, "a") as out:
        out.write("done\n")
    return "released"
