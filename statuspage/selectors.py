"""What the public site reads: components with their freshness, groups, incidents, maintenances.

Every function here runs a fixed number of queries, whatever the length of history.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, OuterRef, Q, Subquery
from django.utils import timezone

from detection.evaluation import STALE_AFTER_INTERVALS
from detection.heartbeat import scheduler_silent
from detection.models import (Component, ComponentGroup, ComponentStatus, Incident, IncidentStatus, IncidentUpdate,
                              Maintenance)

# Statuspage returns "the 50 most recent" incidents and maintenances.
RECENT = 50
UNRESOLVED = [IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING]
# Worst first, for a group's status and the page banner; maintenance ranks above operational so
# "Service Under Maintenance" shows.
BANNER_ORDER = {
    ComponentStatus.UNKNOWN: -1,  # no data says nothing about the others: a group shows their worst
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.MAINTENANCE: 1,
    ComponentStatus.DEGRADED: 2,
    ComponentStatus.PARTIAL: 3,
    ComponentStatus.MAJOR: 4,
}


def worst(statuses) -> str:
    return max(statuses, key=lambda s: BANNER_ORDER.get(s, 0), default=ComponentStatus.UNKNOWN)


def shown_status(component: Component) -> str:
    """What the page says of a component: its status once measured; else why there is no data —
    not measured yet (no run ever), not monitored (no probe enabled), or no data (no fresh run)."""
    if component.status != ComponentStatus.UNKNOWN:
        return component.status
    if getattr(component, "probe_count", 1) == 0:
        return "not_monitored"
    if getattr(component, "last_checked", True) is None:
        return "not_measured"
    return ComponentStatus.UNKNOWN


def components() -> list[Component]:
    """Components (with their group) and when they were last checked, and whether that is too long
    ago. Staleness is judged here too, at request time: if the scheduler or every worker stops,
    nothing else would ever mark the page stale. A silent scheduler makes every component stale
    at once: no probe runs anywhere until it is back."""
    enabled = Q(probes__enabled=True)
    rows = list(Component.objects.select_related("group").annotate(
        last_checked=Max("probes__placements__last_run_at", filter=enabled),
        interval=Min("probes__interval_s", filter=enabled),
        probe_count=Count("probes", filter=enabled, distinct=True),
    ).order_by("position", "name"))
    now = timezone.now()
    silent = scheduler_silent(now)
    for c in rows:
        late = c.last_checked is not None and now - c.last_checked > timedelta(
            seconds=STALE_AFTER_INTERVALS * (c.interval or 60))
        c.stale = c.stale or late or c.probe_count == 0 or silent
        if c.status == ComponentStatus.OPERATIONAL and (late or c.probe_count == 0):
            # Not measured within the staleness window (the evaluation has not caught up yet, or
            # nothing runs to make it): no claim of health.
            c.status = ComponentStatus.UNKNOWN
        c.shown_status = shown_status(c)
    return rows


@dataclass
class Section:
    """One block of the page: a group and its members, or a lone component (group None)."""

    group: ComponentGroup | None
    members: list[Component] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst(c.status for c in self.members)

    @property
    def position(self) -> tuple:
        return (self.group.position, self.group.name) if self.group else (self.members[0].position,
                                                                          self.members[0].name)


def sections(rows: list[Component]) -> list[Section]:
    """The page's layout: groups and ungrouped components in position order, members in theirs."""
    by_group: dict[int, Section] = {}
    out: list[Section] = []
    for c in rows:
        if c.group_id is None:
            out.append(Section(None, [c]))
        elif c.group_id in by_group:
            by_group[c.group_id].members.append(c)
        else:
            by_group[c.group_id] = Section(c.group, [c])
            out.append(by_group[c.group_id])
    return sorted(out, key=lambda s: s.position)


def incidents(**filters) -> list[Incident]:
    return list(Incident.objects.filter(**filters).order_by("-started_at")
                .prefetch_related("updates", "components__group")[:RECENT])


def unresolved_incidents() -> list[Incident]:
    return incidents(status__in=UNRESOLVED)


# What the status page shows of an incident in its lists (templates/statuspage/index.html, the
# acknowledgement beside it): not its evidence, postmortem or components.
LISTED_FIELDS = ("id", "public_id", "platform_id", "title", "title_locked", "title_text", "status", "impact",
                 "impact_override", "started_at", "resolved_at")
LISTED_UPDATE_FIELDS = ("id", "incident_id", "status", "body", "automatic", "text", "created_at")


def listed_incidents(**filters) -> list[Incident]:
    """The 50 most recent incidents matching `filters`, as the status page lists them: the columns it
    shows, and of each timeline only its latest update (`incident.latest_updates`: a list of that
    one, empty for an incident without updates). `incidents()` read every update of each, and its
    components: a page with a year of history lists 50 incidents where a day's lists a few, and
    parsed rows it did not show (their timestamps, their evidence's JSON) in proportion. Each
    incident's latest update is found by the incidents' own query and read by id in a second one
    (a prefetch would filter on the incidents themselves, each turned back into its key: ~20 µs an
    incident), and kept as a plain list, not a queryset per incident (~40 µs each;
    docs/performance.md). Two queries (one when no incident listed has an update)."""
    latest = IncidentUpdate.objects.filter(incident_id=OuterRef("id")).order_by("-created_at", "-id")
    rows = list(Incident.objects.filter(**filters).only(*LISTED_FIELDS)
                .annotate(latest_update_id=Subquery(latest.values("id")[:1])).order_by("-started_at")[:RECENT])
    wanted = [row.latest_update_id for row in rows if row.latest_update_id is not None]
    updates = {u.id: u for u in IncidentUpdate.objects.filter(id__in=wanted).only(*LISTED_UPDATE_FIELDS)} if wanted else {}
    for row in rows:
        update = updates.get(row.latest_update_id)
        row.latest_updates = [update] if update is not None else []
    return rows


def maintenances(now: datetime, which: str = "all") -> list[Maintenance]:
    # A cancelled window never happened: no list shows it (its page says it was cancelled).
    queryset = (Maintenance.objects.filter(cancelled=False).prefetch_related("components__group")
                .order_by("-scheduled_for"))
    if which == "upcoming":
        queryset = queryset.filter(scheduled_for__gt=now)
    elif which == "active":
        queryset = queryset.filter(scheduled_for__lte=now, scheduled_until__gt=now)
    return list(queryset[:RECENT])


def last_checked(rows: list[Component]) -> datetime | None:
    checked = [c.last_checked for c in rows if c.last_checked]
    return max(checked) if checked else None
