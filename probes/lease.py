"""The scheduler lease: of several schedulers (celery beat processes, on any machines), exactly one
schedules at a time — the holder of the one `SchedulerLease` row.

Each scheduler calls `lease_hold` several times per lease period (vigie.beat.LeasedScheduler, on
every beat tick). It is one conditional UPDATE: the row is taken when it is free or expired and
renewed when it is already this holder's, both against the *database's* clock (`Now()`), so the
machines' clocks need not agree. A holder that dies stops renewing, and the first other scheduler to
tick after `expires_at` takes over: within a lease period and a poll, below two dispatch intervals
(docs/production.md). A holder that stops cleanly gives the lease up at once (`lease_release`).

Two schedulers can overlap only if a holder stalls for longer than the lease between its renewal and
its sending. Even then no run is sent twice: the dispatcher claims each placement's slot by a
conditional UPDATE (probes.dispatch._claim), which only one dispatcher wins.
"""
from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, When
from django.db.models.functions import Now
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from probes.models import SchedulerLease

SCHEDULER = "scheduler"


def lease_seconds() -> float:
    """How long a renewal holds the lease: VIGIE_SCHEDULER_LEASE_MS, by default 1.25 dispatch
    intervals."""
    return float(settings.SCHEDULER_LEASE_SECONDS)


def holder_id() -> str:
    """This process's name as a holder: machine, process id, and a nonce (a pid can be reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:200]


def lease_hold(holder: str, *, seconds: float | None = None, name: str = SCHEDULER) -> bool:
    """Take the lease if it is free or expired, or renew it if `holder` has it; whether `holder`
    now leads (until the database's now + `seconds`)."""
    seconds = lease_seconds() if seconds is None else seconds
    until = ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())
    if _renew(holder, seconds, name):
        return True
    if SchedulerLease.objects.filter(name=name).exists():
        return False
    try:  # the very first scheduler: one INSERT wins, the unique name refuses the others
        with transaction.atomic():
            SchedulerLease.objects.create(name=name, holder=holder, acquired_at=Now(), expires_at=until)
        return True
    except IntegrityError:
        return False


# The renewal's SQL, compiled once per holder: a scheduler renews several times per lease period
# for as long as it runs, and compiling the conditional UPDATE was most of an idle beat's CPU.
_renewals: dict[tuple, tuple[str, tuple]] = {}


def _renew(holder: str, seconds: float, name: str) -> bool:
    """The conditional UPDATE of lease_hold: taken if free or expired, renewed if `holder`'s."""
    key = (holder, seconds, name, connection.vendor)
    compiled = _renewals.get(key)
    if compiled is None:
        until = ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())
        rows = SchedulerLease.objects.filter(Q(holder=holder) | Q(expires_at__lt=Now()), name=name)
        query = rows.query.chain(UpdateQuery)
        query.add_update_values({"holder": holder, "expires_at": until,
                                 "acquired_at": Case(When(holder=holder, then=F("acquired_at")), default=Now())})
        sql, params = query.get_compiler(rows.db).as_sql()
        compiled = _renewals[key] = (sql, tuple(params))
        if len(_renewals) > 64:  # holders come and go only in tests
            _renewals.clear()
            _renewals[key] = compiled
    with connection.cursor() as cursor:
        cursor.execute(*compiled)
        return cursor.rowcount > 0


def lease_release(holder: str, *, name: str = SCHEDULER) -> bool:
    """Give the lease up (a scheduler stopping cleanly), so a standby takes over at its next poll."""
    past = ExpressionWrapper(Now() - timedelta(seconds=1), output_field=DateTimeField())
    return bool(SchedulerLease.objects.filter(name=name, holder=holder).update(expires_at=past))


def lease_leader(*, name: str = SCHEDULER) -> SchedulerLease | None:
    """The lease if someone holds it now; None when no scheduler leads (all stopped or dead)."""
    lease = SchedulerLease.objects.filter(name=name).first()
    if lease is None or lease.expires_at <= timezone.now():
        return None
    return lease
