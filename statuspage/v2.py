"""The Statuspage v2 public JSON format: TypedDicts for the wire shapes and their builders."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal, TypedDict
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from probes.models import Component, ComponentStatus

ComponentStatusName = Literal["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
Indicator = Literal["none", "minor", "major", "critical"]


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


class StatusJSON(TypedDict):
    indicator: Indicator
    description: str


class ComponentsDocument(TypedDict):
    page: PageJSON
    components: list[ComponentJSON]


# Worst component status → page indicator and words (Statuspage's roll-up). For the banner,
# maintenance ranks above operational, so "Service Under Maintenance" shows.
BANNER_ORDER = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.MAINTENANCE: 1,
    ComponentStatus.DEGRADED: 2,
    ComponentStatus.PARTIAL: 3,
    ComponentStatus.MAJOR: 4,
}
INDICATOR: dict[str, tuple[Indicator, str]] = {
    ComponentStatus.OPERATIONAL: ("none", "All Systems Operational"),
    ComponentStatus.MAINTENANCE: ("none", "Service Under Maintenance"),
    ComponentStatus.DEGRADED: ("minor", "Degraded System Service"),
    ComponentStatus.PARTIAL: ("major", "Partial System Outage"),
    ComponentStatus.MAJOR: ("critical", "Major System Outage"),
}


def page_id() -> str:
    """Stable 12-character id of this page, derived from its public URL."""
    digest = hashlib.sha256(settings.VIGIE_PUBLIC_URL.encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % 36] for b in digest[:12])


def timestamp(value: datetime) -> str:
    """ISO 8601 with milliseconds and a ±HH:MM offset in the page's time zone."""
    local = timezone.localtime(value, ZoneInfo(settings.TIME_ZONE))
    text = local.isoformat(timespec="milliseconds")
    return text


def page_json(updated_at: datetime) -> PageJSON:
    return {
        "id": page_id(),
        "name": settings.VIGIE_PAGE_NAME,
        "url": settings.VIGIE_PUBLIC_URL,
        "time_zone": settings.TIME_ZONE,
        "updated_at": timestamp(updated_at),
    }


def component_json(component: Component) -> ComponentJSON:
    return {
        "id": component.public_id,
        "name": component.name,
        "status": component.status,  # type: ignore[typeddict-item]
        "created_at": timestamp(component.created_at),
        "updated_at": timestamp(component.updated_at),
        "position": component.position,
        "description": component.description or None,
        "showcase": True,
        "start_date": timezone.localtime(component.created_at, ZoneInfo(settings.TIME_ZONE)).date().isoformat(),
        "group_id": None,
        "page_id": page_id(),
        "group": False,
        "only_show_if_degraded": False,
    }


def overall_status(components: list[Component]) -> StatusJSON:
    worst = max((c.status for c in components), key=lambda s: BANNER_ORDER.get(s, 0), default=ComponentStatus.OPERATIONAL)
    indicator, description = INDICATOR[worst]
    return {"indicator": indicator, "description": description}


def components_document(components: list[Component]) -> ComponentsDocument:
    updated = max((c.updated_at for c in components), default=timezone.now())
    return {"page": page_json(updated), "components": [component_json(c) for c in components]}
