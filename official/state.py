"""A reading of an official source turned into rows: every change of what the platform declares
(indicator, official incident opened/updated/resolved, component status) is an OfficialStateChange
with the time Vigie first saw it. Reading the same document twice changes nothing; a failed read
is one change to `unreachable` (not one per poll), and the next good read changes it back."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from detection.models import Component
from official.fetch import source_fetch
from official.models import (
    ChangeKind, Indicator, OfficialComponent, OfficialIncident, OfficialSource, OfficialStateChange,
)
from official.parse import Declared, DeclaredIncident, Unreadable


def official_source_read(*, source_id: int, now: datetime | None = None) -> str:
    """Read one source, record what it declares (or that it is unreachable), then bring the
    acknowledgements of its platform's incidents up to date. Returns the indicator recorded."""
    from official.acknowledgement import acknowledgements_refresh

    now = now or timezone.now()
    source = OfficialSource.objects.get(id=source_id)
    try:
        declared = source_fetch(source, now=now)
    except Unreadable as exc:
        official_unreachable_record(source_id=source_id, reason=exc.reason, now=now)
        indicator = Indicator.UNREACHABLE
    else:
        official_declared_record(source_id=source_id, declared=declared, now=now)
        indicator = declared.indicator
    acknowledgements_refresh(source_id=source_id, now=now)
    return indicator


def _indicator_set(source: OfficialSource, new: str, now: datetime, text: str) -> bool:
    if source.indicator == new:
        return False
    OfficialStateChange.objects.create(source=source, kind=ChangeKind.INDICATOR, old=source.indicator, new=new,
                                       text=text[:500], seen_at=now)
    source.indicator, source.indicator_since = new, now
    return True


def official_unreachable_record(*, source_id: int, reason: str, now: datetime) -> None:
    """The source could not be read: "unreachable", never "operational"; its incidents are kept
    as they were last read (nothing is known of them)."""
    with transaction.atomic():
        source = OfficialSource.objects.select_for_update().get(id=source_id)
        # Only a change of what is declared touches the public pages (statuspage/apps.py): the
        # bookkeeping alone is saved without the declared fields, so a steady source costs no render.
        changed = _indicator_set(source, Indicator.UNREACHABLE, now, reason)
        source.last_polled_at, source.last_error = now, reason[:300]
        source.save(update_fields=[*(("indicator", "indicator_since") if changed else ()), "last_polled_at", "last_error"])


def _vigie_components(source: OfficialSource) -> tuple[dict[str, Component], dict[str, str]]:
    by_name = {c.name.lower(): c for c in Component.objects.all()}
    mapping = {str(k).lower(): str(v).lower() for k, v in (source.component_map or {}).items()}
    return by_name, mapping


def _mapped(name: str, by_name: dict[str, Component], mapping: dict[str, str]) -> Component | None:
    """The Vigie component an official component name stands for: the config's mapping, else the
    same name (case-insensitive)."""
    return by_name.get(mapping.get(name.lower(), name.lower()))


def _clamp(declared: datetime | None, seen: datetime) -> datetime | None:
    """A declared time is never trusted to be later than when Vigie saw it."""
    return None if declared is None else min(declared, seen)


def official_declared_record(*, source_id: int, declared: Declared, now: datetime) -> int:
    """Record one reading; returns how many change rows were written (0 when nothing changed)."""
    with transaction.atomic():
        source = OfficialSource.objects.select_for_update().get(id=source_id)
        before = OfficialStateChange.objects.filter(source=source).count()
        by_name, mapping = _vigie_components(source)
        changed = _indicator_set(source, declared.indicator, now, declared.description)
        declared_fields = [*(("indicator", "indicator_since") if changed else ())]
        if source.description != declared.description[:200]:
            source.description = declared.description[:200]
            declared_fields.append("description")
        source.last_polled_at = source.last_ok_at = now
        source.last_error = ""
        source.save(update_fields=[*declared_fields, "last_polled_at", "last_ok_at", "last_error"])
        _components_record(source, declared, now, by_name, mapping)
        _incidents_record(source, declared, now, by_name, mapping)
        return OfficialStateChange.objects.filter(source=source).count() - before


def _components_record(source: OfficialSource, declared: Declared, now: datetime,
                       by_name: dict[str, Component], mapping: dict[str, str]) -> None:
    existing = {c.name: c for c in source.components.all()}
    for item in declared.components:
        component = _mapped(item.name, by_name, mapping)
        row = existing.get(item.name)
        if row is None:
            row = OfficialComponent.objects.create(source=source, name=item.name, status=item.status,
                                                   status_since=_clamp(item.updated_at, now) or now,
                                                   component=component)
            OfficialStateChange.objects.create(source=source, kind=ChangeKind.COMPONENT, old="", new=item.status,
                                               official_component=row, seen_at=now,
                                               declared_at=_clamp(item.updated_at, now), text=item.name)
            continue
        dirty = []
        if row.status != item.status:
            OfficialStateChange.objects.create(source=source, kind=ChangeKind.COMPONENT, old=row.status,
                                               new=item.status, official_component=row, seen_at=now,
                                               declared_at=_clamp(item.updated_at, now), text=item.name)
            row.status, row.status_since = item.status, _clamp(item.updated_at, now) or now
            dirty += ["status", "status_since"]
        if row.component_id != (component.id if component else None):
            row.component = component
            dirty.append("component")
        if dirty:
            row.save(update_fields=dirty)


def _incident_values(item: DeclaredIncident, first_seen: datetime, resolved_seen: datetime | None) -> dict:
    return {"name": item.name, "url": item.url, "impact": item.impact, "status": item.status,
            "official_components": item.components, "last_update_text": item.last_update_text,
            "declared_started_at": _clamp(item.started_at, first_seen),
            "declared_resolved_at": _clamp(item.resolved_at, resolved_seen) if resolved_seen else None,
            "resolved_seen_at": resolved_seen}


def _incidents_record(source: OfficialSource, declared: Declared, now: datetime,
                      by_name: dict[str, Component], mapping: dict[str, str]) -> None:
    listed = [item.external_id for item in declared.incidents]
    existing = {i.external_id: i for i in source.incidents.filter(external_id__in=listed)}
    for item in declared.incidents:
        components = [c for c in (_mapped(n, by_name, mapping) for n in item.components) if c is not None]
        row = existing.get(item.external_id)
        change = None
        if row is None:
            resolved_seen = now if item.resolved else None
            row = OfficialIncident.objects.create(source=source, external_id=item.external_id, first_seen_at=now,
                                                  updated_at=now, **_incident_values(item, now, resolved_seen))
            row.components.set(components)
            if not item.resolved:
                # An incident already over when first read (an old feed entry) is history, not a change.
                change = (ChangeKind.INCIDENT_OPENED, "", item.status, item.started_at)
        else:
            was_resolved = row.resolved_seen_at is not None
            resolved_seen = (row.resolved_seen_at or now) if item.resolved else None
            values = _incident_values(item, row.first_seen_at, resolved_seen)
            if item.resolved and not was_resolved:
                change = (ChangeKind.INCIDENT_RESOLVED, row.status, item.status, item.resolved_at)
            elif (row.status, row.last_update_text) != (item.status, item.last_update_text):
                change = (ChangeKind.INCIDENT_UPDATED, row.status, item.status, item.updated_at)
            dirty = [k for k, v in values.items() if getattr(row, k) != v]
            if dirty:
                for key in dirty:
                    setattr(row, key, values[key])
                row.updated_at = now
                row.save(update_fields=[*dirty, "updated_at"])
            if {c.id for c in components} != set(row.components.values_list("id", flat=True)):
                row.components.set(components)
        if change is not None:
            kind, old, new, declared_at = change
            OfficialStateChange.objects.create(source=source, kind=kind, old=old, new=new, official_incident=row,
                                               text=(item.last_update_text or item.name)[:500], seen_at=now,
                                               declared_at=_clamp(declared_at, now))
    if declared.complete:
        # Statuspage lists every unresolved incident: one no longer listed was resolved (when is
        # not said; seen now).
        for row in source.incidents.filter(resolved_seen_at__isnull=True).exclude(external_id__in=listed):
            OfficialStateChange.objects.create(source=source, kind=ChangeKind.INCIDENT_RESOLVED, old=row.status,
                                               new="resolved", official_incident=row, text=row.name, seen_at=now)
            row.status, row.resolved_seen_at, row.updated_at = "resolved", now, now
            row.save(update_fields=["status", "resolved_seen_at", "updated_at"])


def official_sources_claim(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    """The ids of the sources due for a read, each claimed by moving its next_poll_at with a
    conditional UPDATE: two schedulers or workers never read one source for the same turn."""
    now = now or timezone.now()
    claimed = []
    due = (OfficialSource.objects.filter(enabled=True, next_poll_at__lte=now).order_by("next_poll_at")
           .values_list("id", "next_poll_at", "poll_interval_s")[:limit])
    for source_id, at, interval in due:
        if OfficialSource.objects.filter(id=source_id, next_poll_at=at).update(
                next_poll_at=now + timedelta(seconds=interval)) == 1:
            claimed.append(source_id)
    return claimed

