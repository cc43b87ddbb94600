"""Retention: raw runs are kept for VIGIE_RUN_RETENTION_DAYS, then deleted in small batches.

What outlives them: the hourly and daily rollups (detection.rollups, which name no run), status and
state changes (the changes keep their times and reasons; their link to the run becomes empty),
incidents and their evidence.
Each batch is its own short transaction, so deleting a month of runs never holds long locks.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from probes.models import Location, Probe, Run

BATCH = 1000


def runs_prune(*, now: datetime | None = None, batch: int = BATCH, max_seconds: float = 50.0) -> int:
    """Delete runs older than the retention period, `batch` at a time, for at most `max_seconds`
    (the rest waits for the next call). Returns the number deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.VIGIE_RUN_RETENTION_DAYS)
    stop_at = time.monotonic() + max_seconds
    deleted = 0
    # Per probe and location, so that each batch is a range of the (probe, location, started_at)
    # index rather than a scan of the whole table. Every pair, not only today's placements: a
    # probe moved off a location keeps its old runs there.
    location_ids = list(Location.objects.values_list("id", flat=True))
    pairs = [(p, loc) for p in Probe.objects.values_list("id", flat=True) for loc in location_ids]
    for probe_id, location_id in pairs:
        while time.monotonic() < stop_at:
            ids = list(Run.objects.filter(probe_id=probe_id, location_id=location_id, started_at__lt=cutoff)
                       .order_by("-started_at").values_list("id", flat=True)[:batch])
            if not ids:
                break
            with transaction.atomic():
                deleted += Run.objects.filter(id__in=ids).delete()[1].get("probes.Run", 0)
    return deleted
