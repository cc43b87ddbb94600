"""Celery beat that schedules only while it holds the scheduler lease (probes.lease).

Run `celery -A vigie beat` on two machines (or more): each ticks several times per lease period;
the one holding the lease sends beat's periodic tasks (the dispatcher first of all), the others
send nothing and take the lease over once it expires — when the leader died — within two dispatch
intervals. Settings: CELERY_BEAT_SCHEDULER names this class (vigie/settings.py).

What an idle install spends its CPU on is mostly Celery carrying beat's messages, so beat sends
as few as the schedule allows: each entry falls due on its interval's marks on the clock
(`aligned`: every 30 s at :00 and :30), and the light entries due at one moment
(VIGIE_BEAT_TOGETHER) travel as one message, run one after the other by `vigie.celery.together`.
Each keeps its own interval exactly.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from datetime import timedelta

from celery.beat import PersistentScheduler
from celery.schedules import schedstate, schedule

log = logging.getLogger(__name__)


def _logging_unloop() -> None:
    """Django's logging, set up here after beat has redirected stderr into logging, would write every
    record back into logging (Celery drops such loops: beat would log nothing). Its handlers write to
    the real stderr instead."""
    from celery.utils.log import LoggingProxy

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and isinstance(handler.stream, LoggingProxy):
            handler.setStream(sys.__stderr__)


class aligned(schedule):  # noqa: N801 (named as Celery's own schedules are)
    """Every `run_every`, on the multiples of it on the UTC clock (every 15 s: :00, :15, :30, :45),
    so that entries whose intervals divide one another fall due at the same moment. The interval
    between two runs is the same as a plain `schedule`'s; only the phase is fixed.

    A mark counts as reached `EARLY` seconds before it: beat wakes 10 ms ahead of what it is told
    (Scheduler.adjust), and an entry found "due in 10 ms" would have beat spin until then."""

    EARLY = 0.05

    def is_due(self, last_run_at) -> schedstate:
        every = self.run_every.total_seconds()
        now = self.now().timestamp() + self.EARLY
        last = self.maybe_make_aware(last_run_at).timestamp() + self.EARLY
        due_at = (math.floor(last / every) + 1) * every  # the mark after the one it last ran for
        if now >= due_at:
            return schedstate(True, (math.floor(now / every) + 1) * every - now + self.EARLY)
        return schedstate(False, due_at - now + self.EARLY)

    def __repr__(self) -> str:
        return f"<aligned: every {self.run_every.total_seconds():g} s>"


class LeasedScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs) -> None:
        import django

        django.setup()  # beat reads and writes the lease through Django's database connection
        _logging_unloop()
        from django.conf import settings

        from probes.lease import holder_id

        self.holder = holder_id()
        self.leading: bool | None = None  # the first tick says which it is
        self.held_at = -math.inf  # time.monotonic() of the last renewal that kept the lease
        self.together_names = frozenset(settings.VIGIE_BEAT_TOGETHER)
        self.together: list = []  # entries due now, sent as one message when the burst ends
        super().__init__(*args, **kwargs)

    def merge_inplace(self, b: dict) -> None:
        # Every entry on a plain interval (seconds) falls due on that interval's marks.
        b = {name: ({**entry, "schedule": aligned(timedelta(seconds=entry["schedule"]))}
                    if isinstance(entry.get("schedule"), (int, float)) else entry)
             for name, entry in b.items()}
        super().merge_inplace(b)

    def poll_seconds(self) -> float:
        from probes.lease import lease_seconds

        return lease_seconds() / 4

    def lease_hold(self) -> bool:
        from django.db import DatabaseError, close_old_connections, connection

        from probes.lease import lease_hold

        close_old_connections()
        try:
            leading = lease_hold(self.holder)
        except DatabaseError:  # the database away: nobody can dispatch anyway; reconnect next tick
            log.warning("scheduler %s cannot reach the database to hold the lease; not scheduling", self.holder)
            connection.close()
            leading = False
        if leading != self.leading:
            log.warning("scheduler %s %s", self.holder, "now leads: scheduling" if leading else "stands by")
            self.leading = leading
        self.held_at = time.monotonic() if leading else -math.inf
        return leading

    def tick(self, *args, **kwargs) -> float:
        poll = self.poll_seconds()
        # Within a burst (several entries due at once, one per call) the lease renewed a moment ago
        # still holds: one renewal per poll at most.
        if time.monotonic() - self.held_at >= poll and not self.lease_hold():
            self.together.clear()
            return poll
        delay = super().tick(*args, **kwargs)
        if delay > 0 and self.together:  # nothing else due now: the light ones go, as one message
            self.together_send()
        return min(delay, poll - (time.monotonic() - self.held_at))

    def apply_entry(self, entry, producer=None) -> None:
        if entry.task in self.together_names:
            self.together.append(entry)
        else:
            super().apply_entry(entry, producer=producer)

    def together_send(self) -> None:
        entries, self.together = self.together, []
        if len(entries) == 1:
            return super().apply_entry(entries[0], producer=self.producer)
        tasks = [self.app.tasks.get(entry.task) for entry in entries]
        conf = self.app.conf
        options = {
            # Each runs within its own limits, one after the other; the message is as fresh as its
            # most perishable entry.
            "time_limit": sum(getattr(task, "time_limit", None) or conf.task_time_limit or 0 for task in tasks) or None,
            "soft_time_limit": sum(getattr(task, "soft_time_limit", None) or conf.task_soft_time_limit or 0
                                   for task in tasks) or None,
            "expires": min((entry.options.get("expires") for entry in entries if entry.options.get("expires")),
                           default=None),
            "headers": {"celery_beat_task": True},
        }
        names = [entry.task for entry in entries]
        log.info("Scheduler: Sending due tasks together: %s", ", ".join(entry.name for entry in entries))
        try:
            self.app.send_task("vigie.celery.together", args=[names], producer=self.producer, **options)
        except Exception:  # as Celery's own apply_entry: one failed send must not stop beat
            log.exception("could not send %s", ", ".join(names))

    def close(self) -> None:
        if self.leading:
            try:
                from probes.lease import lease_release

                lease_release(self.holder)
            except Exception:  # stopping anyway; the lease expires by itself
                log.exception("could not release the scheduler lease")
        super().close()
