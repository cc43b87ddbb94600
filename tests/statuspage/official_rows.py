"""Small factories for what a platform declares (official/ rows), written directly: the pages,
feeds, on-call and reports only read them (official-core's fetcher and matcher write them)."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from detection.models import Incident, IncidentUpdate
from official.models import IncidentAcknowledgement, Indicator, OfficialIncident, OfficialSource
from probes.models import Platform


def platform_make(name: str = "Chirp", slug: str = "chirp") -> Platform:
    platform = Platform.objects.filter(slug=slug).first()
    return platform or Platform.objects.create(name=name, slug=slug, kind="sandbox", base_url="http://127.0.0.1:9")


def source_make(platform: Platform, *, indicator: str = Indicator.NONE, since: datetime | None = None,
                description: str = "All Systems Operational", unacknowledged_after_s: int = 900,
                url: str = "https://status.chirp.example") -> OfficialSource:
    return OfficialSource.objects.create(platform=platform, kind="statuspage", url=url, indicator=indicator,
                                         indicator_since=since, description=description,
                                         unacknowledged_after_s=unacknowledged_after_s)


def incident_make(platform: Platform, *, started_at: datetime, resolved_at: datetime | None = None,
                  title: str = "Posting failing", detected_after_s: float = 60,
                  started_uncertainty_s: float = 0, resolved_uncertainty_s: float = 0) -> Incident:
    incident = Incident.objects.create(
        platform=platform, title=title, automatic=True, impact="major",
        status="resolved" if resolved_at else "investigating", started_at=started_at,
        detected_at=started_at + timedelta(seconds=detected_after_s), resolved_at=resolved_at,
        started_uncertainty_s=started_uncertainty_s, resolved_uncertainty_s=resolved_uncertainty_s)
    IncidentUpdate.objects.create(incident=incident, status="investigating", body="Posting is failing.",
                                  automatic=False, created_at=started_at + timedelta(seconds=detected_after_s))
    if resolved_at:
        IncidentUpdate.objects.create(incident=incident, status="resolved", body="Posting works again.",
                                      automatic=False, created_at=resolved_at)
    return incident


def official_incident_make(source: OfficialSource, *, name: str = "Elevated error rates", seen_at: datetime,
                           url: str = "https://status.chirp.example/incidents/abc", external_id: str = "abc",
                           resolved_at: datetime | None = None) -> OfficialIncident:
    return OfficialIncident.objects.create(source=source, external_id=external_id, name=name, url=url,
                                           impact="major", status="resolved" if resolved_at else "investigating",
                                           declared_started_at=seen_at, first_seen_at=seen_at,
                                           declared_resolved_at=resolved_at, resolved_seen_at=resolved_at)


def ack_make(incident: Incident, source: OfficialSource, *, official: OfficialIncident | None = None,
             at: datetime | None = None, resolved_at: datetime | None = None) -> IncidentAcknowledgement:
    return IncidentAcknowledgement.objects.create(
        incident=incident, source=source, official_incident=official, acknowledged_at=at,
        seen_at=at, official_resolved_at=resolved_at, updated_at=timezone.now())
