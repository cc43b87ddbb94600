"""What the rest of Vigie hears about, sent only after the transaction that caused it commits."""
from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger(__name__)

# Something the public can see changed: a component's status or freshness, an incident, its
# updates, a maintenance. The public site's cache and static copy listen (statuspage.cache).
public_changed = Signal()


def _send(signal: Signal, **ids) -> None:
    # A listener that fails (the cache server away, say) must neither undo nor hide the change
    # that already committed, nor keep the other listeners from hearing of it.
    for receiver, outcome in signal.send_robust(sender=None, **ids):
        if isinstance(outcome, Exception):
            log.error("%s failed on %s: %r", getattr(receiver, "__qualname__", receiver), signal, outcome)


def public_change() -> None:
    """Announce a public change once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _send(public_changed), robust=True)


# What on-call and subscribers are told about (notifications listens), each with the id of the
# row that says what happened: an incident update, a maintenance crossing a boundary ("started",
# "ended"), one of Vigie's own problems opened or resolved.
incident_updated = Signal()  # update_id
maintenance_boundary = Signal()  # maintenance_id, phase
problem_changed = Signal()  # problem_id


def announce(signal: Signal, **ids) -> None:
    """Send `signal` with `ids` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _send(signal, **ids), robust=True)
