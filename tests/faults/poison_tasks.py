"""Tasks that poison their worker, loaded only by the workers tests/faults/test_poison.py starts
(`celery worker --include tests.faults.poison_tasks`). Each appends a line to `journal` when it
starts, so the test counts the deliveries that reached the task's code."""
from __future__ import annotations

import os
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
