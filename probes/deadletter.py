"""Poison messages: a task message that fails, or kills its worker, every time it is delivered is
tried a bounded number of times, then set aside as a dead letter for on-call to retry or discard.

Tasks acknowledged late go back to the queue when their worker dies mid-task (kill -9, the OOM
killer, a crash in C code), and nothing in Celery counts how often: such a message would come back
forever. So each delivery is counted in the database *before* the task's work starts
(`TaskDelivery`, keyed by the message's task id, which a Celery retry keeps): a process killed
mid-task has been counted already. A delivery past VIGIE_TASK_MAX_DELIVERIES is not worked on: its
row becomes a dead letter. A task that raises is retried with backoff (the same task id) until the
same limit. The row is deleted when the task ends, so the table holds only what is in progress and
what was set aside.

The guard never stops work for its own sake: with the database down, the task runs unguarded (a
run then waits in the spool, probes.spool).
"""
from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Callable

from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from platforms.http import redact
from probes.losses import TaskDelivery

log = logging.getLogger(__name__)

DB_DOWN = (OperationalError, InterfaceError)
ERROR_CHARS = 2000
BACKOFF_FIRST_S, BACKOFF_MAX_S = 5, 300

# Where secrets come from, for redacting arguments and errors: probes' own here, higher layers add
# theirs when Django is ready (notifications/apps.py), as they cannot be imported from here.
SECRET_SOURCES: list[Callable[[], list[str]]] = []
# Task name → what to count when one of its messages is set aside (probes/tasks.py: the runs it held).
ON_DEAD: dict[str, Callable[[list, dict], None]] = {}


def _probe_secrets() -> list[str]:
    from platforms.crypto import UNREADABLE
    from probes.models import Account

    found = [settings.SECRET_KEY]
    for token, session in Account.objects.values_list("token", "session"):
        found += [value for value in (token, session) if value and value != UNREADABLE]
    return found


SECRET_SOURCES.append(_probe_secrets)


def secrets_known() -> list[str]:
    found: list[str] = []
    for source in SECRET_SOURCES:
        try:
            found += source()
        except Exception:  # one source failing must not leak the others' secrets: it is logged
            log.exception("secrets source %s failed", getattr(source, "__name__", source))
    return found


def redacted(value, secrets: list[str]):
    """`value` (JSON-ready) with every secret hidden, and whether anything was."""
    text = json.dumps(value, default=str)
    hidden = redact(text, secrets)
    try:
        return json.loads(hidden), hidden != text
    except ValueError:  # redaction cut through JSON syntax: keep the text
        return hidden, True


def backoff_s(deliveries: int) -> int:
    return min(BACKOFF_FIRST_S * 2 ** max(0, deliveries - 1), BACKOFF_MAX_S)


def delivery_begin(*, task_id: str, task_name: str, queue: str) -> TaskDelivery:
    """Count one more delivery of a message (before its work starts); the row as it is now. The
    first delivery, nearly every message's only one, costs an UPDATE that finds nothing and an
    INSERT; the arguments are only written (redacted) if the message is set aside."""
    now = timezone.now()
    if not TaskDelivery.objects.filter(task_id=task_id).update(deliveries=F("deliveries") + 1, last_seen_at=now):
        try:
            with transaction.atomic():
                return TaskDelivery.objects.create(task_id=task_id, task_name=task_name[:200],
                                                   queue=(queue or "")[:200], deliveries=1, first_seen_at=now,
                                                   last_seen_at=now)
        except IntegrityError:  # the same message delivered twice at once: count this one too
            TaskDelivery.objects.filter(task_id=task_id).update(deliveries=F("deliveries") + 1, last_seen_at=now)
    return TaskDelivery.objects.get(task_id=task_id)


class TaskFailed(Exception):
    """A task's failure as Celery may log it: its type and message, redacted and truncated."""


def delivery_failed(*, task_id: str, error: BaseException) -> str:
    """Keep a delivery's error (redacted, truncated) on its row; the text kept."""
    text = redact(f"{type(error).__name__}: {error}", secrets_known())[:ERROR_CHARS]
    TaskDelivery.objects.filter(task_id=task_id).update(last_error=text, last_seen_at=timezone.now())
    return text


def delivery_done(*, task_id: str) -> None:
    TaskDelivery.objects.filter(task_id=task_id, state=TaskDelivery.State.ACTIVE).delete()


def delivery_set_aside(*, row: TaskDelivery, args: list, kwargs: dict, why: str = "") -> None:
    """Make a message a dead letter (once), with its arguments redacted, and count what it held (ON_DEAD)."""
    secrets = secrets_known()
    safe_args, args_hidden = redacted(list(args), secrets)
    safe_kwargs, kwargs_hidden = redacted(dict(kwargs), secrets)
    updated = TaskDelivery.objects.filter(id=row.id, state=TaskDelivery.State.ACTIVE).update(
        state=TaskDelivery.State.DEAD, dead_at=timezone.now(), args=safe_args, kwargs=safe_kwargs,
        retryable=not (args_hidden or kwargs_hidden),
        **({"last_error": why[:ERROR_CHARS]} if why and not row.last_error else {}))
    if not updated:
        return
    log.error("task %s %s delivered %d time(s) and never completed: set aside as a dead letter (%s)",
              row.task_name, row.task_id, row.deliveries, (row.last_error or why)[:200])
    count = ON_DEAD.get(row.task_name)
    if count is not None:
        try:
            count(list(args), dict(kwargs))
        except Exception:
            log.exception("counting what dead letter %s held failed", row.task_id)


def dead_letter_retry(*, row_id: int) -> str | None:
    """Send a dead letter's task again, as a new message; the row goes (its task is back in a queue).
    Returns the new task id, or None when it cannot be retried (redacted arguments). Raises what the
    broker raises when it cannot be reached: the row is then kept."""
    from celery import current_app

    row = TaskDelivery.objects.get(id=row_id, state=TaskDelivery.State.DEAD)
    if not row.retryable:
        return None
    options = {"queue": row.queue} if row.queue else {}
    result = current_app.send_task(row.task_name, args=row.args, kwargs=row.kwargs, **options)
    TaskDelivery.objects.filter(id=row.id).delete()
    return result.id


def dead_letter_discard(*, row_id: int) -> bool:
    return TaskDelivery.objects.filter(id=row_id, state=TaskDelivery.State.DEAD).delete()[0] > 0


def deliveries_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Rows of messages that stopped coming back without ending (their last delivery expired, or its
    worker's hard time limit ended it): what is in progress is never a day old."""
    cutoff = timezone.now() - older_than
    return TaskDelivery.objects.filter(state=TaskDelivery.State.ACTIVE, last_seen_at__lt=cutoff).delete()[0]


class GuardedTask(Task):
    """The base of tasks acknowledged late (`base=GuardedTask`): counted deliveries, retries with
    backoff, then the dead-letter table."""

    abstract = True

    def __call__(self, *args, **kwargs):
        request = self.request
        if request.id is None or request.is_eager or request.called_directly:
            return self.run(*args, **kwargs)
        limit = settings.VIGIE_TASK_MAX_DELIVERIES
        queue = (request.delivery_info or {}).get("routing_key") or ""
        try:
            row = delivery_begin(task_id=request.id, task_name=self.name, queue=queue)
        except DB_DOWN as exc:
            log.warning("task %s %s runs without its delivery count: database unreachable (%s)",
                        self.name, request.id, type(exc).__name__)
            return self.run(*args, **kwargs)
        if row.state == TaskDelivery.State.DEAD:
            return None  # set aside already (a copy delivered again): on-call decides
        if row.deliveries > limit:
            delivery_set_aside(row=row, args=args, kwargs=kwargs,
                               why=f"its worker died during each of {row.deliveries - 1} deliveries")
            return None
        try:
            result = self.run(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:
            try:
                error = delivery_failed(task_id=request.id, error=exc)
                if row.deliveries >= limit:
                    row.refresh_from_db()
                    delivery_set_aside(row=row, args=args, kwargs=kwargs)
                    return None
            except DB_DOWN:
                raise exc from None
            log.warning("task %s %s failed on delivery %d of %d (%s); again in %d s", self.name, request.id,
                        row.deliveries, limit, type(exc).__name__, backoff_s(row.deliveries))
            # Celery logs the retry's reason: the redacted text, never the exception as raised.
            raise self.retry(exc=TaskFailed(error), countdown=backoff_s(row.deliveries), max_retries=None) from None
        try:
            delivery_done(task_id=request.id)
        except DB_DOWN:
            pass  # an active row left behind is pruned (deliveries_prune)
        return result


def dead_letters() -> list[TaskDelivery]:
    return list(TaskDelivery.objects.filter(state=TaskDelivery.State.DEAD).order_by("-dead_at")[:100])

