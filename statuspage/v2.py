"""The Statuspage v2 public JSON format: TypedDicts for the wire shapes and their builders."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from detection.models import Component, ComponentStatus, Incident
from official import selectors as official
from statuspage.selectors import Section, sections, worst

ComponentStatusName = Literal["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
Indicator = Literal["none", "minor", "major", "critical", "maintenance"]


class PageJSON(TypedDict):
    id: str
    name: str
    url: str
    time_zone: str
    updated_at: str


class ComponentJSON(TypedDict):
    id: str
    name: str
    status: ComponentStatusName
    created_at: str
    updated_at: str
    position: int
    description: str | None
    showcase: bool
    start_date: str | None
    group_id: str | None
    page_id: str
    group: bool
    only_show_if_degraded: bool
    components: NotRequired[list[str]]  # only on groups: their members' ids


class StatusJSON(TypedDict):
    indicator: Indicator
    description: str


class ComponentsDocument(TypedDict):
    page: PageJSON
    components: list[ComponentJSON]


# Worst component status → page indicator and words, as Statuspage writes them: "maintenance" while a
# maintenance is in progress and nothing is worse, and its own descriptions ("Partially Degraded
# Service", "Minor Service Outage", "Major Service Outage").
INDICATOR: dict[str, tuple[Indicator, str]] = {
    ComponentStatus.OPERATIONAL: ("none", "All Systems Operational"),
    ComponentStatus.MAINTENANCE: ("maintenance", "Service Under Maintenance"),
    ComponentStatus.DEGRADED: ("minor", "Partially Degraded Service"),
    ComponentStatus.PARTIAL: ("major", "Minor Service Outage"),
    ComponentStatus.MAJOR: ("critical", "Major Service Outage"),
    ComponentStatus.UNKNOWN: ("none", "Not Measured Yet"),
}

# Statuspage names UTC "Etc/UTC" in `page.time_zone` and writes its times with a "Z".
UTC_NAMES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT", "Universal", "Etc/Universal"}


def page_id() -> str:
    """Stable 12-character id of this page, derived from its public URL."""
    digest = hashlib.sha256(settings.VIGIE_PUBLIC_URL.encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % 36] for b in digest[:12])


def page_time_zone() -> str:
    return "Etc/UTC" if settings.TIME_ZONE in UTC_NAMES else settings.TIME_ZONE


def timestamp(value: datetime) -> str:
    """ISO 8601 with milliseconds, as Statuspage writes it: `2023-02-08T21:10:43.123Z` on a UTC page,
    `2022-02-15T13:37:37.407-08:00` (the page's offset) on a page in another time zone."""
    local = timezone.localtime(value, ZoneInfo(settings.TIME_ZONE))
    text = local.isoformat(timespec="milliseconds")
    if settings.TIME_ZONE in UTC_NAMES:
        return text.removesuffix("+00:00") + "Z"
    return text


def page_json(updated_at: datetime) -> PageJSON:
    return {
        "id": page_id(),
        "name": settings.VIGIE_PAGE_NAME,
        "url": settings.VIGIE_PUBLIC_URL,
        "time_zone": page_time_zone(),
        "updated_at": timestamp(updated_at),
    }


def component_json(component: Component) -> ComponentJSON:
    return {
        "id": component.public_id,
        "name": component.name,
        "status": component.status,  # type: ignore[typeddict-item]
        "created_at": timestamp(component.created_at),
        "updated_at": timestamp(component.updated_at),
        "position": component.position + 1,  # Statuspage counts from 1
        "description": component.description or None,
        "showcase": True,
        "start_date": timezone.localtime(component.created_at, ZoneInfo(settings.TIME_ZONE)).date().isoformat(),
        "group_id": component.group.public_id if component.group_id else None,
        "page_id": page_id(),
        "group": False,
        "only_show_if_degraded": False,
    }


def group_json(section: Section) -> ComponentJSON:
    """A component group, as Statuspage shows it: a component with `group: true`, the worst status
    of its members and their ids in `components`."""
    group = section.group
    return {
        "id": group.public_id,
        "name": group.name,
        "status": section.status,  # type: ignore[typeddict-item]
        "created_at": timestamp(group.created_at),
        "updated_at": timestamp(max(c.updated_at for c in section.members)),
        "position": group.position + 1,
        "description": group.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": page_id(),
        "group": True,
        "only_show_if_degraded": False,
        "components": [c.public_id for c in section.members],
    }


def components_list(components: list[Component]) -> list[ComponentJSON]:
    """Every measured component and group in page order: a group, then its members.

    A component with no data (not measured yet, not monitored, no fresh run) is left out:
    Statuspage's five statuses have none for "unknown", and any of them would be a claim Vigie has
    not measured. It appears once measured; a group with no measured member is left out too."""
    out: list[ComponentJSON] = []
    for section in sections([c for c in components if c.status != ComponentStatus.UNKNOWN]):
        if section.group:
            out.append(group_json(section))
        out += [component_json(c) for c in section.members]
    return out


def overall_status(components: list[Component]) -> StatusJSON:
    """Statuspage's roll-up over the measured components. With some not measured, "all systems
    operational" would be a claim: the description says only the measured ones are."""
    status = worst(c.status for c in components)
    indicator, description = INDICATOR[status]
    if status == ComponentStatus.OPERATIONAL and any(c.status == ComponentStatus.UNKNOWN for c in components):
        description = "All Measured Systems Operational"
    return {"indicator": indicator, "description": description}


def page_for(components: list[Component]) -> PageJSON:
    """The page object, updated when its latest component or incident was: on Statuspage,
    `updated_at` moves with every incident update too."""
    latest_incident = Incident.objects.aggregate(at=Max("updated_at"))["at"]
    moments = [c.updated_at for c in components] + ([latest_incident] if latest_incident else [])
    return page_json(max(moments, default=timezone.now()))


def components_document(components: list[Component]) -> ComponentsDocument:
    return {"page": page_for(components), "components": components_list(components)}


# --- incidents and maintenances ----------------------------------------------------------------

IncidentStatusName = Literal["investigating", "identified", "monitoring", "resolved", "postmortem",
                             "scheduled", "in_progress", "verifying", "completed"]


class AffectedComponentJSON(TypedDict):
    code: str
    name: str
    old_status: str
    new_status: str


class IncidentUpdateJSON(TypedDict):
    id: str
    status: IncidentStatusName
    body: str
    incident_id: str
    created_at: str
    updated_at: str
    display_at: str
    affected_components: list[AffectedComponentJSON] | None
    deliver_notifications: bool
    custom_tweet: None
    tweet_id: None


class IncidentJSON(TypedDict):
    id: str
    name: str
    status: IncidentStatusName
    created_at: str
    updated_at: str
    monitoring_at: str | None
    resolved_at: str | None
    impact: Literal["none", "minor", "major", "critical", "maintenance"]
    shortlink: str
    started_at: str
    page_id: str
    incident_updates: list[IncidentUpdateJSON]
    components: list[ComponentJSON]
    postmortem_body: str | None
    postmortem_published_at: str | None
    vigie_acknowledgement: NotRequired[AcknowledgementJSON]  # only for a platform with an official source


class OfficialIncidentJSON(TypedDict):
    name: str
    url: str | None  # http(s) only


class AcknowledgementJSON(TypedDict):
    """Vigie's extra on an incident (`vigie_acknowledgement`): whether and when the platform
    acknowledged it on its own status page. Not a Statuspage field: consumers ignore it."""

    platform: str
    acknowledged: bool
    acknowledged_at: str | None
    time_to_acknowledge_s: float | None  # official first sign − measured start; < 0: declared first
    official_incident: OfficialIncidentJSON | None
    official_resolved_at: str | None


class DeclaredJSON(TypedDict):
    """Vigie's extra on summary.json and status.json (`vigie_declared`): what each platform
    declares about itself. `indicator` is Statuspage's, or "unreachable" / "unknown" (not read yet)."""

    platform: str
    indicator: str
    since: str | None
    description: str
    url: str | None


class MaintenanceJSON(IncidentJSON):
    scheduled_for: str
    scheduled_until: str


def _opt(value: datetime | None) -> str | None:
    return timestamp(value) if value else None


def acknowledgement_json(ack: official.Acknowledgement) -> AcknowledgementJSON:
    official_incident = ack.official_incident
    return {
        "platform": ack.platform_name,
        "acknowledged": ack.acknowledged,
        "acknowledged_at": _opt(ack.acknowledged_at),
        "time_to_acknowledge_s": ack.time_to_acknowledge_s,
        "official_incident": ({"name": official_incident.name, "url": ack.official_url or None}
                              if official_incident is not None else None),
        "official_resolved_at": _opt(ack.official_resolved_at),
    }


def declared_json(sources: list) -> list[DeclaredJSON]:
    return [{"platform": s.platform.name, "indicator": s.indicator, "since": _opt(s.indicator_since),
             "description": s.description if s.indicator not in ("unreachable", "unknown") else "",
             "url": official.safe_url(s.url) or None} for s in sources]


def incidents_json(incidents: list) -> list[IncidentJSON]:
    """Incidents as Statuspage shapes them, each with Vigie's `vigie_acknowledgement` where its
    platform has an official source (two more queries in all)."""
    acks = official.acknowledgements(incidents)
    return [incident_json(i, ack=acks.get(i.id)) for i in incidents]


def incident_json(incident, ack: official.Acknowledgement | None = None) -> IncidentJSON:
    """An incident as Statuspage shapes it; `incident` comes with updates and components prefetched."""
    updates: list[IncidentUpdateJSON] = [{
        "id": u.public_id, "status": u.status, "body": u.body, "incident_id": incident.public_id,
        "created_at": timestamp(u.created_at), "updated_at": timestamp(u.created_at),
        "display_at": timestamp(u.created_at), "affected_components": u.affected_components or None,
        "deliver_notifications": True, "custom_tweet": None, "tweet_id": None,
    } for u in incident.updates.all()]  # newest first (the model's ordering)
    resolved_at = incident.resolved_at
    if resolved_at is not None:
        # Vigie dates the end when the runs came back, which may precede the last update written;
        # Statuspage's resolved_at is never earlier than the incident's last update.
        resolved_at = max([resolved_at] + [u.created_at for u in incident.updates.all()])
    document: IncidentJSON = {
        "id": incident.public_id, "name": incident.title, "status": incident.status,
        "created_at": timestamp(incident.created_at), "updated_at": timestamp(incident.updated_at),
        "monitoring_at": _opt(incident.monitoring_at), "resolved_at": _opt(resolved_at),
        "impact": incident.effective_impact,
        "shortlink": f"{settings.VIGIE_PUBLIC_URL}/incidents/{incident.public_id}",
        "started_at": timestamp(incident.started_at), "page_id": page_id(), "incident_updates": updates,
        "components": [component_json(c) for c in incident.components.all()],
        "postmortem_body": incident.postmortem_body or None,
        "postmortem_published_at": _opt(incident.postmortem_published_at),
    }
    if ack is not None:
        document["vigie_acknowledgement"] = acknowledgement_json(ack)
    return document


MAINTENANCE_STEPS = (("scheduled", "created_at", "Maintenance scheduled."),
                     ("in_progress", "scheduled_for", "Maintenance is in progress."),
                     ("completed", "scheduled_until", "Maintenance has completed."))


def maintenance_steps(maintenance, now: datetime) -> list[tuple[str, datetime, str]]:
    """The steps a maintenance's times have reached, newest first: (status, when, words). A window
    entered after it began shows its later steps from its creation, never before it."""
    reached = [(name, max(getattr(maintenance, field), maintenance.created_at), text)
               for name, field, text in MAINTENANCE_STEPS
               if name == "scheduled" or getattr(maintenance, field) <= now]
    return list(reversed(reached))


def maintenance_json(maintenance, now: datetime) -> MaintenanceJSON:
    """A maintenance window; its updates are the steps its times have reached, newest first."""
    status = maintenance.status_at(now)
    reached = maintenance_steps(maintenance, now)
    updates: list[IncidentUpdateJSON] = []
    for name, at, text in reached:
        update_id = hashlib.sha256(f"{maintenance.public_id}:{name}".encode()).digest()
        updates.append({
            "id": "".join("abcdefghijklmnopqrstuvwxyz0123456789"[b % 36] for b in update_id[:12]),
            "status": name, "body": maintenance.body if name == "scheduled" and maintenance.body else text,
            "incident_id": maintenance.public_id, "created_at": timestamp(at), "updated_at": timestamp(at),
            "display_at": timestamp(at), "affected_components": None, "deliver_notifications": True,
            "custom_tweet": None, "tweet_id": None,
        })
    return {
        "id": maintenance.public_id, "name": maintenance.title, "status": status,
        "created_at": timestamp(maintenance.created_at),
        "updated_at": timestamp(max(at for _, at, _ in reached)),
        "monitoring_at": None,
        "resolved_at": timestamp(maintenance.scheduled_until) if status == "completed" else None,
        "impact": "maintenance", "shortlink": f"{settings.VIGIE_PUBLIC_URL}/incidents/{maintenance.public_id}",
        "started_at": timestamp(maintenance.scheduled_for), "page_id": page_id(), "incident_updates": updates,
        "components": [component_json(c) for c in maintenance.components.all()],
        "postmortem_body": None, "postmortem_published_at": None,
        "scheduled_for": timestamp(maintenance.scheduled_for),
        "scheduled_until": timestamp(maintenance.scheduled_until),
    }
