"""What the pages, feeds, on-call and reports read of the platforms' declarations: the declared
state per platform, each incident's acknowledgement, the official incidents Vigie did not see, and
the time-to-acknowledge figures. Read only; official-core's fetcher and matcher write the rows.

Every function runs a fixed number of queries, whatever the length of history.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Iterable

from django.db.models import Q

from detection.models import Incident
from official.models import IncidentAcknowledgement, OfficialIncident, OfficialSource

ACK_STATS_DAYS = 90
SAFE_SCHEMES = ("http://", "https://")


def safe_url(url: str) -> str:
    """The link to an official page, only when it is http(s): a `javascript:` or `data:` URL from
    a hostile source is never a link."""
    url = (url or "").strip()
    return url if url.lower().startswith(SAFE_SCHEMES) else ""


def sources(platform_ids: Iterable[int] | None = None) -> list[OfficialSource]:
    """The enabled official sources of enabled platforms, by platform name (one query)."""
    rows = (OfficialSource.objects.filter(enabled=True, platform__enabled=True).select_related("platform")
            .order_by("platform__name"))
    if platform_ids is not None:
        rows = rows.filter(platform_id__in=list(platform_ids))
    return list(rows)


@dataclass
class Acknowledgement:
    """One Vigie incident seen beside its platform's declarations, for display."""

    incident: Incident
    source: OfficialSource
    row: IncidentAcknowledgement | None  # None: the matcher has not looked at it yet

    @property
    def platform_name(self) -> str:
        return self.source.platform.name

    @property
    def acknowledged(self) -> bool:
        return self.row is not None and self.row.acknowledged_at is not None

    @property
    def acknowledged_at(self) -> datetime | None:
        return self.row.acknowledged_at if self.row is not None else None

    @property
    def official_incident(self) -> OfficialIncident | None:
        return self.row.official_incident if self.row is not None else None

    @property
    def official_name(self) -> str:
        official = self.official_incident
        return official.name if official is not None else ""

    @property
    def official_url(self) -> str:
        official = self.official_incident
        return safe_url(official.url) if official is not None else ""

    @property
    def official_resolved_at(self) -> datetime | None:
        return self.row.official_resolved_at if self.row is not None else None

    @property
    def time_to_acknowledge_s(self) -> float | None:
        """Official first sign − measured start; negative when the platform declared it first."""
        if not self.acknowledged:
            return None
        return (self.row.acknowledged_at - self.incident.started_at).total_seconds()

    def unacknowledged_s(self, now: datetime) -> float:
        """How long the incident has gone unacknowledged: to now while open, to its end once over."""
        end = self.incident.resolved_at or now
        return max(0.0, (end - self.incident.started_at).total_seconds())

    def minutes(self, now: datetime) -> int:
        """The whole minutes shown: time to acknowledge, else time unacknowledged (never below 0)."""
        seconds = self.time_to_acknowledge_s if self.acknowledged else self.unacknowledged_s(now)
        return max(0, int(seconds // 60))

    @property
    def before_measured_start(self) -> bool:
        return self.acknowledged and self.time_to_acknowledge_s < 0

    def overdue(self, now: datetime) -> bool:
        """Open, unacknowledged and past the source's threshold."""
        return (not self.acknowledged and self.incident.resolved_at is None
                and self.unacknowledged_s(now) >= self.source.unacknowledged_after_s)


def acknowledgements(incidents: Iterable[Incident]) -> dict[int, Acknowledgement]:
    """Each incident whose platform has an official source, by incident id, with its
    acknowledgement (two queries). An incident of a platform without a source is absent: there is
    nothing to say about what it declares."""
    incidents = [i for i in incidents if i.platform_id is not None]
    if not incidents:
        return {}
    by_platform = {s.platform_id: s for s in sources({i.platform_id for i in incidents})}
    rows = {a.incident_id: a for a in IncidentAcknowledgement.objects.filter(
        incident_id__in=[i.id for i in incidents]).select_related("official_incident")}
    out = {}
    for incident in incidents:
        source = by_platform.get(incident.platform_id)
        if source is None:
            continue
        row = rows.get(incident.id)
        if row is not None:
            row.incident = incident  # spare the property a query
        out[incident.id] = Acknowledgement(incident=incident, source=source, row=row)
    return out


def acknowledgement_of(incident: Incident) -> Acknowledgement | None:
    return acknowledgements([incident]).get(incident.id)


def unseen_official_incidents(*, since: datetime | None = None, until: datetime | None = None,
                              source_ids: Iterable[int] | None = None) -> list[OfficialIncident]:
    """Official incidents no Vigie incident is matched to: declared by the platform, not seen by
    Vigie's probes. Newest first, with their source and platform (one query)."""
    rows = (OfficialIncident.objects.filter(acknowledgements__isnull=True, source__enabled=True)
            .select_related("source__platform").order_by("-first_seen_at"))
    if since is not None:
        rows = rows.filter(Q(resolved_seen_at__isnull=True) | Q(resolved_seen_at__gte=since))
    if until is not None:
        rows = rows.filter(first_seen_at__lt=until)
    if source_ids is not None:
        rows = rows.filter(source_id__in=list(source_ids))
    return list(rows[:50])


@dataclass
class AckStats:
    """Time to acknowledge over a window, for one source."""

    source: OfficialSource
    times_s: list[float] = field(default_factory=list)  # acknowledged incidents, never below 0
    never: int = 0  # resolved incidents the platform never acknowledged
    open_unacknowledged: int = 0

    @property
    def median_s(self) -> float | None:
        return median(self.times_s) if self.times_s else None

    @property
    def worst_s(self) -> float | None:
        return max(self.times_s) if self.times_s else None

    @property
    def count(self) -> int:
        return len(self.times_s) + self.never + self.open_unacknowledged


def acknowledgement_stats(now: datetime, *, days: int = ACK_STATS_DAYS, since: datetime | None = None,
                          until: datetime | None = None) -> list[AckStats]:
    """Per enabled source, over the incidents that started in the window (the last `days` days by
    default): median and worst time to acknowledge, and how many ended never acknowledged. A
    platform that declared before Vigie measured counts 0 (it was not late). Two queries."""
    since = since or now - timedelta(days=days)
    until = until or now
    stats = {s.id: AckStats(source=s) for s in sources()}
    rows = (IncidentAcknowledgement.objects.filter(source_id__in=list(stats), incident__started_at__gte=since,
                                                   incident__started_at__lt=until)
            .values_list("source_id", "acknowledged_at", "incident__started_at", "incident__resolved_at"))
    for source_id, acknowledged_at, started_at, resolved_at in rows:
        entry = stats[source_id]
        if acknowledged_at is not None:
            entry.times_s.append(max(0.0, (acknowledged_at - started_at).total_seconds()))
        elif resolved_at is not None:
            entry.never += 1
        else:
            entry.open_unacknowledged += 1
    return list(stats.values())
