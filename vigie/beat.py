"""Celery beat that schedules only while it holds the scheduler lease (probes.lease).

Run `celery -A vigie beat` on two machines (or more): each ticks several times per lease period;
the one holding the lease sends beat's periodic tasks (the dispatcher first of all), the others
send nothing and take the lease over once it expires — when the leader died — within two dispatch
intervals. Settings: CELERY_BEAT_SCHEDULER names this class (vigie/settings.py).
"""
from __future__ import annotations

import logging
import sys

from celery.beat import PersistentScheduler

log = logging.getLogger(__name__)


def _logging_unloop() -> None:
    """Django's logging, set up here after beat has redirected stderr into logging, would write every
    record back into logging (Celery drops such loops: beat would log nothing). Its handlers write to
    the real stderr instead."""
    from celery.utils.log import LoggingProxy

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and isinstance(handler.stream, LoggingProxy):
            handler.setStream(sys.__stderr__)


class LeasedScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs) -> None:
        import django

        django.setup()  # beat reads and writes the lease through Django's database connection
        _logging_unloop()
        from probes.lease import holder_id

        self.holder = holder_id()
        self.leading: bool | None = None  # the first tick says which it is
        super().__init__(*args, **kwargs)

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
        return leading

    def tick(self, *args, **kwargs) -> float:
        poll = self.poll_seconds()
        if not self.lease_hold():
            return poll
        return min(super().tick(*args, **kwargs), poll)

    def close(self) -> None:
        if self.leading:
            try:
                from probes.lease import lease_release

                lease_release(self.holder)
            except Exception:  # stopping anyway; the lease expires by itself
                log.exception("could not release the scheduler lease")
        super().close()
