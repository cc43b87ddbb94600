"""Each Vigie incident's acknowledgement by its platform, and the official incidents Vigie did not see.

The rule (docs/official-status.md): the platform acknowledged a Vigie incident with its first
official sign overlapping it — an official incident, or a declared indicator other than `none`
(and other than Vigie's own `unreachable`/`unknown`) — on the same platform, between GRACE before
the measured start and the measured end (or now while open). An official incident that names
components mapped to Vigie components must share one with the Vigie incident; one naming none (or
none mapped), or a Vigie incident with no component, is matched by time alone. An indicator
change seen while an official incident was open is that incident's doing: it is judged through the
incident (so a red page about other components does not acknowledge).

acknowledged_at is the sign's declared time (else when Vigie first saw it), never earlier than
GRACE before the measured start (a page already red long before counts from there) and never later
than when Vigie first saw it (what the platform says came first cannot have come after it was shown).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from detection.models import Incident
from official.models import (
    ChangeKind, IncidentAcknowledgement, Indicator, OfficialIncident, OfficialSource, OfficialStateChange,
)

# An official sign this long before Vigie's measured start still acknowledges the incident (the
# platform can see its own trouble a little before the probes' next runs do).
GRACE = timedelta(minutes=10)
# Vigie incidents resolved this recently still have their acknowledgement brought up to date (a
# platform that declares after the fact acknowledges late, not never).
LATE_WINDOW = timedelta(days=1)
SIGNS = (Indicator.MINOR, Indicator.MAJOR, Indicator.CRITICAL, Indicator.MAINTENANCE)


@dataclass
class Sign:
    acknowledged_at: datetime
    seen_at: datetime
    resolved_at: datetime | None
    official_incident: OfficialIncident | None = None
    official_change: OfficialStateChange | None = None


def _clamp(value: datetime, low: datetime, high: datetime) -> datetime:
    return max(low, min(value, high))


def _incident_signs(incident: Incident, source: OfficialSource, low: datetime, high: datetime,
                    components: set[int]) -> list[Sign]:
    overlapping = source.incidents.filter(
        Q(declared_started_at__lte=high) | Q(declared_started_at__isnull=True, first_seen_at__lte=high),
    ).filter(
        Q(resolved_seen_at__isnull=True) | Q(declared_resolved_at__gte=low)
        | Q(declared_resolved_at__isnull=True, resolved_seen_at__gte=low),
    ).prefetch_related("components")
    signs = []
    for official in overlapping:
        named = {c.id for c in official.components.all()}
        if named and components and not named & components:
            continue  # it names other components than the ones that failed
        signs.append(Sign(acknowledged_at=_clamp(official.acknowledged_at, low, official.first_seen_at),
                          seen_at=official.first_seen_at,
                          resolved_at=official.declared_resolved_at or official.resolved_seen_at,
                          official_incident=official, official_change=official.changes.filter(kind=ChangeKind.INCIDENT_OPENED).first()))
    return signs


def _explained(source: OfficialSource, at: datetime) -> bool:
    """Whether an official incident was open when an indicator change was seen: the change is then
    that incident's doing, and judged through it (its components)."""
    return source.incidents.filter(first_seen_at__lte=at).filter(
        Q(resolved_seen_at__isnull=True) | Q(resolved_seen_at__gt=at)).exists()


def _indicator_signs(source: OfficialSource, low: datetime, high: datetime) -> list[Sign]:
    """Periods of a declared indicator in SIGNS that overlap [low, high], from its change to the
    next, that no official incident explains."""
    changes = list(source.changes.filter(kind=ChangeKind.INDICATOR, seen_at__lte=high).order_by("seen_at", "id"))
    signs = []
    for i, change in enumerate(changes):
        following = changes[i + 1:]
        ends = following[0].seen_at if following else None
        if change.new not in SIGNS or (ends is not None and ends < low) or _explained(source, change.seen_at):
            continue
        back = next((c for c in following if c.new == Indicator.NONE), None)
        started = change.declared_at or change.seen_at
        signs.append(Sign(acknowledged_at=_clamp(started, low, change.seen_at), seen_at=change.seen_at,
                          resolved_at=(back.declared_at or back.seen_at) if back else None, official_change=change))
    return signs


def acknowledgement_sign(incident: Incident, source: OfficialSource, *, now: datetime) -> Sign | None:
    """The platform's first official sign of `incident`, or None (not acknowledged yet)."""
    low = incident.started_at - GRACE
    high = incident.resolved_at or now
    components = set(incident.components.values_list("id", flat=True))
    signs = _incident_signs(incident, source, low, high, components) + _indicator_signs(source, low, high)
    # The earliest; at the same time an official incident (it has a name and a link) before an indicator.
    return min(signs, key=lambda s: (s.acknowledged_at, s.official_incident is None), default=None)


def acknowledgement_refresh(*, incident_id: int, now: datetime | None = None) -> IncidentAcknowledgement | None:
    """Create or bring up to date the acknowledgement of one Vigie incident (None when its platform
    has no official source). Running it twice changes nothing."""
    now = now or timezone.now()
    incident = Incident.objects.filter(id=incident_id).first()
    if incident is None or incident.platform_id is None:
        return None
    source = OfficialSource.objects.filter(platform_id=incident.platform_id).first()
    if source is None:
        return None
    sign = acknowledgement_sign(incident, source, now=now)
    values = {
        "source": source,
        "official_incident": sign.official_incident if sign else None,
        "official_change": sign.official_change if sign else None,
        "acknowledged_at": sign.acknowledged_at if sign else None,
        "seen_at": sign.seen_at if sign else None,
        "official_resolved_at": sign.resolved_at if sign else None,
    }
    ack, created = IncidentAcknowledgement.objects.get_or_create(incident=incident,
                                                                 defaults={**values, "updated_at": now})
    if not created:
        dirty = [key for key, value in values.items() if getattr(ack, key) != value]
        if dirty:
            for key in dirty:
                setattr(ack, key, values[key])
            ack.updated_at = now
            ack.save(update_fields=[*dirty, "updated_at"])
    return ack


def acknowledgements_refresh(*, source_id: int, now: datetime | None = None) -> int:
    """After a read of a source: the acknowledgements of its platform's open incidents and of those
    resolved within LATE_WINDOW. Returns how many incidents were looked at."""
    now = now or timezone.now()
    source = OfficialSource.objects.filter(id=source_id).first()
    if source is None:
        return 0
    ids = list(Incident.objects.filter(platform_id=source.platform_id)
               .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=now - LATE_WINDOW))
               .values_list("id", flat=True))
    for incident_id in ids:
        acknowledgement_refresh(incident_id=incident_id, now=now)
    return len(ids)


def official_incidents_unseen(source: OfficialSource, since: datetime) -> list[OfficialIncident]:
    """Official incidents of `source` since `since` (or still open) that Vigie's probes did not see:
    no acknowledgement links them and no Vigie incident of the platform overlaps them (GRACE on
    both sides). Newest first."""
    candidates = (source.incidents.filter(Q(resolved_seen_at__isnull=True) | Q(first_seen_at__gte=since)
                                          | Q(declared_started_at__gte=since))
                  .filter(acknowledgements__isnull=True).order_by("-first_seen_at"))
    unseen = []
    for official in candidates:
        start = official.acknowledged_at - GRACE
        end = (official.declared_resolved_at or official.resolved_seen_at or timezone.now()) + GRACE
        overlapping = Incident.objects.filter(platform_id=source.platform_id, started_at__lte=end).filter(
            Q(resolved_at__isnull=True) | Q(resolved_at__gte=start))
        if not overlapping.exists():
            unseen.append(official)
    return unseen
