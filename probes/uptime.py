"""Uptime from the component status rows: per day, per component, over the last 90 days.

The formula (stated on the public page too): for each day,

    uptime = 1 − (major outage seconds + 0.3 × partial outage seconds) / (observed seconds − maintenance seconds)

where "observed" starts when the component was created. Degraded performance counts as up
(Instatus, incident.io); maintenance counts neither way. Days are calendar days in the page's time
zone. Two queries whatever the length of history: the status rows inside the window and the
incidents that overlap it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from probes.models import Component, ComponentStatus, ComponentStatusChange, IncidentComponent

DAYS = 90
PARTIAL_WEIGHT = 0.3
# Weighted downtime of a day → the colour level of its cell (also said in words, never colour alone).
LEVELS = ((0, "up"), (30 * 60, "minor"), (4 * 3600, "partial"))  # above the last: "major"


@dataclass
class Day:
    date: date
    observed_s: float = 0.0
    major_s: float = 0.0
    partial_s: float = 0.0
    degraded_s: float = 0.0
    maintenance_s: float = 0.0
    incidents: list[tuple[str, str]] = field(default_factory=list)  # (public id, title)

    @property
    def counted_s(self) -> float:
        return max(0.0, self.observed_s - self.maintenance_s)

    @property
    def down_s(self) -> float:
        return self.major_s + PARTIAL_WEIGHT * self.partial_s

    @property
    def uptime(self) -> float | None:
        return 1 - min(self.down_s, self.counted_s) / self.counted_s if self.counted_s else None

    @property
    def level(self) -> str:
        if self.observed_s == 0:
            return "nodata"
        for limit, name in LEVELS:
            if self.down_s <= limit:
                return name
        return "major"


@dataclass
class UptimeBar:
    days: list[Day]

    @property
    def uptime(self) -> float | None:
        return ratio(self.days)


def ratio(days: list[Day]) -> float | None:
    counted = sum(d.counted_s for d in days)
    return 1 - min(sum(d.down_s for d in days), counted) / counted if counted else None


def _midnights(first: date, count: int, zone: ZoneInfo) -> list[datetime]:
    """Local midnights from `first`, `count` + 1 of them (each day's start and the last day's end),
    in UTC: arithmetic on aware datetimes of one zone is wall-clock time, which would make the
    days around a daylight-saving change 24 hours long instead of 23 or 25."""
    return [datetime.combine(first + timedelta(days=i), datetime.min.time(), tzinfo=zone).astimezone(dt_timezone.utc)
            for i in range(count + 1)]


def uptime_bars(components: list[Component], *, now: datetime | None = None, days: int = DAYS) -> dict[int, UptimeBar]:
    """Component id → its bar of `days` days ending today (page time zone)."""
    now = now or timezone.now()
    zone = ZoneInfo(settings.TIME_ZONE)
    today = timezone.localtime(now, zone).date()
    first = today - timedelta(days=days - 1)
    bounds = _midnights(first, days, zone)
    window_start = bounds[0]
    ids = [c.id for c in components]

    changes: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)
    for component_id, at, old, new in (ComponentStatusChange.objects.filter(component_id__in=ids,
                                                                             changed_at__gte=window_start)
                                       .order_by("changed_at", "id")
                                       .values_list("component_id", "changed_at", "old_status", "new_status")):
        changes[component_id].append((at, old, new))

    bars = {}
    for component in components:
        rows = changes.get(component.id, [])
        # The status at the window's start: what the first change in the window changed from.
        status = rows[0][1] if rows else component.status
        start = max(window_start, component.created_at)
        intervals = []
        for at, _old, new in rows:
            if at > start:
                intervals.append((start, at, status))
            start, status = max(start, at), new
        if now > start:
            intervals.append((start, now, status))
        cells = [Day(date=first + timedelta(days=i)) for i in range(days)]
        for begin, end, state in intervals:
            _spread(cells, bounds, begin, end, state)
        bars[component.id] = UptimeBar(cells)

    for component_id, public_id, title, started, resolved in (
            IncidentComponent.objects.filter(component_id__in=ids, incident__started_at__lt=now)
            .filter(Q(incident__resolved_at__isnull=True) | Q(incident__resolved_at__gte=window_start))
            .order_by("incident__started_at")
            .values_list("component_id", "incident__public_id", "incident__title", "incident__started_at",
                         "incident__resolved_at")):
        end = resolved or now
        for i, cell in enumerate(bars[component_id].days):
            # Days it overlaps (one resolved at midnight is not on the next day), while watched.
            overlaps = started < bounds[i + 1] and (end > bounds[i] or started >= bounds[i])
            if overlaps and cell.observed_s:
                cell.incidents.append((public_id, title))
    return bars


def _spread(cells: list[Day], bounds: list[datetime], begin: datetime, end: datetime, state: str) -> None:
    """Add the interval [begin, end) in `state` to the days it overlaps."""
    for i, cell in enumerate(cells):
        overlap = (min(end, bounds[i + 1]) - max(begin, bounds[i])).total_seconds()
        if overlap <= 0:
            continue
        cell.observed_s += overlap
        if state == ComponentStatus.MAJOR:
            cell.major_s += overlap
        elif state == ComponentStatus.PARTIAL:
            cell.partial_s += overlap
        elif state == ComponentStatus.DEGRADED:
            cell.degraded_s += overlap
        elif state == ComponentStatus.MAINTENANCE:
            cell.maintenance_s += overlap
