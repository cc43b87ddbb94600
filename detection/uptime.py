"""Uptime from the component status rollups: per day, per component, over the last 90 days.

The formula (stated on the public page too): for each day,

    uptime = 1 − (major outage seconds + 0.3 × partial outage seconds) / (observed seconds − maintenance seconds)

where "observed" starts when the component was created. Degraded performance counts as up
(Instatus, incident.io); maintenance counts neither way. Days are calendar days in the page's time
zone. The seconds come from the daily rollups (detection.rollups), which hold every interval a status
change has closed — read through their copy by month, ComponentMonth — plus the current status
since `Component.status_since`, spread here. Two queries whatever the length of history: the
months the window overlaps and the incidents that overlap it.
"""
from __future__ import annotations

import functools
from bisect import bisect_right
from array import array
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language

from detection.models import PARTIAL_WEIGHT, Component, ComponentMonth, ComponentStatus, IncidentComponent
from detection.rollups import (SECONDS_FIELDS, STATUS_FIELDS, midnights, month_of, page_zone,
                               seconds_unpack)
from detection.texts import title_shown

DAYS = 90
# Weighted downtime of a day → the colour level of its cell (also said in words, never colour alone).
LEVELS = ((0, "up"), (30 * 60, "minor"), (4 * 3600, "partial"))  # above the last: "major"
WIDTH = len(SECONDS_FIELDS)  # 5 floats a day
NO_SECONDS = (0.0,) * WIDTH


# One day of a bar, for what reads a few bars (UptimeBar.days): the page reads the bar's array.
@dataclass(slots=True)
class Day:
    date: date
    observed_s: float = 0.0
    major_s: float = 0.0
    partial_s: float = 0.0
    degraded_s: float = 0.0
    maintenance_s: float = 0.0
    incidents: tuple[tuple[str, str], ...] = ()  # (public id, title): a tuple, a key of the cell's words

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


class UptimeBar:
    """A component's days, as their seconds in one flat array (SECONDS_FIELDS per day, in order) and
    the incidents of the days that have some: no object per day. A page of 50 components has 4,500
    days; a Day each was the largest single cost of building its bars (docs/performance.md).
    `days` gives them as Day objects, for what reads a few bars (reports, badges, tests)."""

    def __init__(self, dates: list[date], values: array, links: dict[int, tuple] | None = None,
                 span_s: float = 0.0):
        self.dates = dates  # shared by the bars of one page
        self.values = values
        self.links = links or {}  # day index → ((public id, title), …)
        # Seconds of the bar's window the component existed: what was measured is a share of it.
        self.span_s = span_s

    @classmethod
    def of_days(cls, days: list[Day], span_s: float = 0.0) -> UptimeBar:
        values = array("d", [getattr(d, name) for d in days for name in SECONDS_FIELDS])
        return cls([d.date for d in days], values, {i: tuple(d.incidents) for i, d in enumerate(days) if d.incidents},
                   span_s)

    def rows(self):
        """(date, observed, major, partial, degraded, maintenance) per day, read from the array in C."""
        v = self.values
        return zip(self.dates, v[0::WIDTH], v[1::WIDTH], v[2::WIDTH], v[3::WIDTH], v[4::WIDTH])

    @functools.cached_property
    def days(self) -> list[Day]:
        links = self.links
        return [Day(*row, links.get(i, ())) for i, row in enumerate(self.rows())]

    @functools.cached_property
    def uptime(self) -> float | None:  # read twice per bar on the page: its label and its legend
        # Day.counted_s and Day.down_s, summed day by day in order: the same floats as ratio(days).
        v = self.values
        counted = sum([max(0.0, o - m) for o, m in zip(v[0::WIDTH], v[4::WIDTH])])
        if not counted:
            return None
        return 1 - min(sum([a + PARTIAL_WEIGHT * b for a, b in zip(v[1::WIDTH], v[2::WIDTH])]), counted) / counted

    @functools.cached_property
    def measured(self) -> float | None:
        """The share of the window with measurements (the rest, no data, is excluded from uptime)."""
        return min(1.0, sum(self.values[0::WIDTH]) / self.span_s) if self.span_s > 0 else None

    @property
    def unmeasured_shown(self) -> bool:
        """Whether the page should say how much was measured: something was, and not all of it."""
        return self.measured is not None and 0 < self.measured < 0.995


def ratio(days: list[Day]) -> float | None:
    # Day.counted_s and Day.down_s, written out: 4,500 days a page, read through properties, were
    # a tenth of a page's render. Summed in the same order, so the same floats.
    counted = sum([max(0.0, d.observed_s - d.maintenance_s) for d in days])
    if not counted:
        return None
    return 1 - min(sum([d.major_s + PARTIAL_WEIGHT * d.partial_s for d in days]), counted) / counted


def uptime_bars(components: list[Component], *, now: datetime | None = None, days: int = DAYS) -> dict[int, UptimeBar]:
    """Component id → its bar of `days` days ending today (page time zone)."""
    now = now or timezone.now()
    zone = page_zone()
    today = timezone.localtime(now, zone).date()
    first = today - timedelta(days=days - 1)
    bounds = midnights(first, days, zone)
    ids = [c.id for c in components]

    # The months the window overlaps, a row per component and month (ComponentMonth: its days'
    # seconds in one value), not a row per component and day: 200 rows for 50 components, where
    # 4,500 cost more to read than anything else the page does with a long history.
    dates = [first + timedelta(days=i) for i in range(days)]
    months = sorted({month_of(d) for d in dates})
    # Each month's part of the window, as a slice of its array: [from, to) in floats.
    parts = []
    for m in months:
        inside = [d.day for d in dates if month_of(d) == m]
        parts.append(((inside[0] - 1) * WIDTH, inside[-1] * WIDTH))
    stored: dict[int, list] = {}
    for component_id, month, blob in (ComponentMonth.objects.filter(component_id__in=ids, month__gte=months[0],
                                                                     month__lte=months[-1])
                                      .values_list("component_id", "month", "seconds")):
        values = seconds_unpack(blob)
        # A short value, which no writer leaves, reads as days without seconds, not as an error.
        values.extend(NO_SECONDS * (31 - len(values) // WIDTH))
        stored.setdefault(component_id, [None] * len(months))[months.index(month)] = values
    empty = array("d", NO_SECONDS * days)
    bars = {}
    for component in components:
        rows = stored.get(component.id)
        if rows is None:
            values = array("d", empty)
        else:
            values = array("d")
            for v, (lo, hi) in zip(rows, parts):
                values.extend(v[lo:hi] if v is not None else empty[:hi - lo])
        # The current status, since its last change (or since the component exists): not in the
        # rollups until it changes again.
        begin = max(bounds[0], component.created_at, component.status_since or component.created_at)
        if now > begin:
            _spread(values, bounds, begin, now, component.status)
        existed = max(bounds[0], component.created_at)
        bars[component.id] = UptimeBar(dates, values, span_s=max(0.0, (now - existed).total_seconds()))

    # Each incident's title in the page's language (Incident.shown_title); in English, the stored
    # one, so its words are read only for another language.
    translated = (get_language() or "en").split("-")[0] != "en"
    shown: dict[str, str] = {}
    for component_id, public_id, title, started, resolved, *words in (
            IncidentComponent.objects.filter(component_id__in=ids, incident__started_at__lt=now)
            .filter(Q(incident__resolved_at__isnull=True) | Q(incident__resolved_at__gte=bounds[0]))
            .order_by("incident__started_at")
            .values_list("component_id", "incident__public_id", "incident__title", "incident__started_at",
                         "incident__resolved_at",
                         *(("incident__title_text", "incident__title_locked") if translated else ()))):
        if words:
            if public_id not in shown:
                text, locked = words
                shown[public_id] = title if locked else title_shown(title, text)
            title = shown[public_id]
        end = resolved or now
        bar = bars[component_id]
        values, links = bar.values, bar.links
        # From the day it started (or the window's first), the days it overlaps: one resolved at
        # midnight is not on the next day. Only days while watched.
        for i in range(max(0, bisect_right(bounds, started) - 1), days):
            if not (started < bounds[i + 1] and (end > bounds[i] or started >= bounds[i])):
                break
            if values[i * WIDTH]:  # observed
                links[i] = (*links.get(i, ()), (public_id, title))
    return bars


def _spread(values: array, bounds: list[datetime], begin: datetime, end: datetime, state: str) -> None:
    """Add the interval [begin, end) in `state` to the days it overlaps, in a bar's array (the same
    overlaps, to the float, as detection.rollups.status_pieces computes for the days it stores; the
    same additions as add_status_seconds)."""
    if state == ComponentStatus.UNKNOWN:
        return  # time without measurement is no data: neither up nor down, not observed
    name = STATUS_FIELDS.get(state)
    at = SECONDS_FIELDS.index(name) if name else 0
    for i in range(max(0, bisect_right(bounds, begin) - 1), len(bounds) - 1):
        low, high = bounds[i], bounds[i + 1]
        if low >= end:
            break
        overlap = ((end if end < high else high) - (begin if begin > low else low)).total_seconds()
        if overlap > 0:
            values[i * WIDTH] += overlap
            if at:
                values[i * WIDTH + at] += overlap
