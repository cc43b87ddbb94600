"""The scheduler's heartbeat, and the watchdog loop that reads it without depending on the scheduler.

Beat sends the dispatcher every `VIGIE_DISPATCH_EVERY` seconds and each pass writes the
"scheduler" heartbeat. Every Celery worker process runs a daemon thread (`WatchdogLoop`, started
on `worker_ready` in vigie/celery.py) that reads it once per dispatch interval. A heartbeat
older than three dispatch intervals means the scheduler is silent: no probe is being sent
anywhere. The loop then opens the `scheduler_silent` own problem (on-call hears of it through the
usual notifications), and — beat's own periodic tasks being silent too — does their on-call work
itself: `evaluation.watchdog()` and the retries of due notifications. A fresh heartbeat resolves
the problem. The public page judges the same age at request time (statuspage.selectors), so it
says "monitoring is delayed" even if no worker is left to run this loop.

Why dispatch intervals and not probe intervals: the heartbeat is written every dispatch interval,
so three missed ones is the first moment silence is certain, and it comes before any location
goes stale (three probe intervals) — on-call hears of the cause before its effects.

Any number of workers run the loop at once and change nothing twice: one open problem per kind
and subject (a unique constraint), one event per key, deliveries claimed by a conditional UPDATE.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from detection.events import public_change
from probes.dispatch import SCHEDULER, heartbeat_beat  # noqa: F401 (written by the dispatcher)
from probes.models import Heartbeat
from detection.models import OwnProblem

log = logging.getLogger(__name__)

SILENT_AFTER_INTERVALS = 3
# While the scheduler is silent, the loop does beat's watchdog and notification retries as often
# as beat would (vigie.settings: "watchdog" every VIGIE_WATCHDOG_EVERY s, "deliver-due-notifications" every 15 s).
def duties_every() -> float:
    return float(settings.VIGIE_WATCHDOG_EVERY)


# The loop's duties while the scheduler is silent, f(now), added when the apps are ready: evaluation's
# watchdog (detection/apps.py), then notifications' retries (notifications/apps.py).
SILENT_DUTIES: list = []


def dispatch_every() -> timedelta:
    return timedelta(seconds=settings.DISPATCH_EVERY_SECONDS)


def silent_after() -> timedelta:
    return dispatch_every() * SILENT_AFTER_INTERVALS


def scheduler_last_beat() -> datetime | None:
    return Heartbeat.objects.filter(name=SCHEDULER).values_list("beat_at", flat=True).first()


def scheduler_silent(now: datetime | None = None) -> bool:
    """Whether the scheduler has dispatched nothing for three intervals. No heartbeat at all (no
    scheduler has run yet) is not silence: there is nothing it stopped doing."""
    beat_at = scheduler_last_beat()
    return beat_at is not None and (now or timezone.now()) - beat_at > silent_after()


def scheduler_check(*, now: datetime | None = None, watching_since: datetime | None = None) -> bool | None:
    """Open or resolve the scheduler-silent problem from the heartbeat's age. Returns True when
    silent, False when the scheduler beats, None when this watcher cannot tell yet: no heartbeat,
    or an old one seen by a watcher started less than three intervals ago (at start-up the
    scheduler gets the same time to beat as at any other moment). Only a fresh heartbeat resolves,
    so a watcher that cannot tell never undoes what another one found."""
    from detection.problems import problem_open, problem_resolve

    now = now or timezone.now()
    beat_at = scheduler_last_beat()
    if beat_at is None:
        return None
    if now - beat_at <= silent_after():
        if problem_resolve(OwnProblem.Kind.SCHEDULER_SILENT, SCHEDULER):
            public_change()  # the page's "monitoring is delayed" goes at once, not when its cache expires
        return False
    if watching_since is not None and now - watching_since <= silent_after():
        return None
    if not OwnProblem.objects.filter(kind=OwnProblem.Kind.SCHEDULER_SILENT, subject=SCHEDULER,
                                     resolved_at__isnull=True).exists():
        every = settings.DISPATCH_EVERY_SECONDS
        problem_open(OwnProblem.Kind.SCHEDULER_SILENT, SCHEDULER,
                     f"no probe dispatched since {beat_at:%Y-%m-%d %H:%M:%S %Z} (the scheduler, celery beat, "
                     f"should dispatch every {every} s); no probe runs anywhere until it is back")
        public_change()
    return True


def duties_while_silent(now: datetime | None = None) -> None:
    """What beat's periodic tasks would do for on-call: mark stale placements, announce problems
    and maintenance boundaries, and retry due notifications (here, not through the broker, which
    may be what is down)."""
    for duty in SILENT_DUTIES:  # evaluation.watchdog (detection/apps.py), then notifications' retries
        duty(now)


class WatchdogLoop(threading.Thread):
    """Checks the scheduler's heartbeat once per dispatch interval, in a daemon thread."""

    def __init__(self) -> None:
        super().__init__(name="vigie-scheduler-watchdog", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        watching_since = timezone.now()
        duties_at = 0.0
        every = settings.DISPATCH_EVERY_SECONDS
        while not self.stopping.wait(every):
            try:
                silent = scheduler_check(watching_since=watching_since)
                if silent and time.monotonic() - duties_at >= duties_every():
                    duties_at = time.monotonic()
                    duties_while_silent()
            except Exception:  # the database away for a moment: try again next interval
                log.exception("scheduler watchdog pass failed")
            finally:
                close_old_connections()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout)


_loop: WatchdogLoop | None = None


def loop_start() -> WatchdogLoop:
    """Start this process's watchdog loop (once)."""
    global _loop
    if _loop is None or not _loop.is_alive():
        _loop = WatchdogLoop()
        _loop.start()
    return _loop


def loop_stop() -> None:
    global _loop
    if _loop is not None:
        _loop.stop()
        _loop = None
