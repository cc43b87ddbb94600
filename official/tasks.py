"""Celery tasks of official sources: thin doors over official.state."""
from __future__ import annotations

from celery import shared_task

from official.state import official_source_read, official_sources_claim


@shared_task(name="official.tasks.read_due", ignore_result=True, time_limit=60, soft_time_limit=50)
def read_due() -> int:
    """Beat's turn: claim the sources due and read each in its own task."""
    claimed = official_sources_claim()
    for source_id in claimed:
        read_source.apply_async((source_id,), expires=60)
    return len(claimed)


@shared_task(name="official.tasks.read_source", ignore_result=True, time_limit=60, soft_time_limit=45)
def read_source(source_id: int) -> str:
    return official_source_read(source_id=source_id)
