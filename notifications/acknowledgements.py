"""On-call is told when the platform stays silent about an incident past its source's
`unacknowledged_after_s`, and when it acknowledges it: each once per incident.

Each is claimed by a conditional UPDATE of its claim field on the incident's acknowledgement
(`unacknowledged_notified_at`, `acknowledged_notified_at`: still empty → now), and the event made
in the same transaction: exactly one of any number of racing checkers makes it, and a claim
whose event could not be made is undone with it. The event key is unique too (a second line).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from detection.incidents import format_duration_seconds
from notifications.domain import _component_refs, event_record
from notifications.links import _link
from notifications.models import Event, EventKind, EventPayload
from official.models import IncidentAcknowledgement
from official.selectors import Acknowledgement, safe_url

log = logging.getLogger(__name__)

# Incidents older than this are not looked at: a source configured today does not page on-call
# about last month's incidents (and the query stays on recent rows).
LOOK_BACK = timedelta(days=2)


def _payload(ack: Acknowledgement, *, status: str, body: str, occurred_at: datetime) -> EventPayload:
    incident = ack.incident
    return {"title": incident.title, "status": status, "body": body,
            "url": _link(reverse("incident", args=[incident.public_id])),
            "components": _component_refs(incident.components.order_by("position", "name")),
            "occurred_at": occurred_at.isoformat()}


def _claim_and_record(row: IncidentAcknowledgement, field: str, *, now: datetime, key: str, kind: str,
                      payload: EventPayload, unacknowledged: bool) -> Event | None:
    with transaction.atomic():
        still = IncidentAcknowledgement.objects.filter(id=row.id, **{f"{field}__isnull": True},
                                                       acknowledged_at__isnull=unacknowledged)
        if still.update(**{field: now}) != 1:
            return None  # another checker took it, or the platform acknowledged meanwhile
        return event_record(key=key, kind=kind, payload=payload,
                            components=row.incident.components.order_by("position", "name"))


def unacknowledged_notify(*, now: datetime | None = None) -> list[Event]:
    """Events for open incidents past their source's threshold with no acknowledgement yet."""
    now = now or timezone.now()
    rows = (IncidentAcknowledgement.objects
            .filter(acknowledged_at__isnull=True, unacknowledged_notified_at__isnull=True, source__enabled=True,
                    incident__resolved_at__isnull=True, incident__started_at__gte=now - LOOK_BACK)
            .select_related("incident", "source__platform"))
    made = []
    for row in rows:
        ack = Acknowledgement(incident=row.incident, source=row.source, row=row)
        if not ack.overdue(now):
            continue
        platform = row.source.platform.name
        silent = format_duration_seconds(ack.unacknowledged_s(now))
        body = (f"{platform} has not acknowledged this incident on its own status page {silent} after the "
                f"measured start (threshold {format_duration_seconds(row.source.unacknowledged_after_s)}).")
        event = _claim_and_record(row, "unacknowledged_notified_at", now=now, unacknowledged=True,
                                  key=f"incident-unacknowledged:{row.incident.public_id}",
                                  kind=EventKind.INCIDENT_UNACKNOWLEDGED,
                                  payload=_payload(ack, status="unacknowledged", body=body, occurred_at=now))
        if event is not None:
            made.append(event)
    return made


def acknowledged_notify(*, now: datetime | None = None) -> list[Event]:
    """Events for incidents the platform has acknowledged, not told yet."""
    now = now or timezone.now()
    rows = (IncidentAcknowledgement.objects
            .filter(acknowledged_at__isnull=False, acknowledged_notified_at__isnull=True, source__enabled=True,
                    incident__started_at__gte=now - LOOK_BACK)
            .select_related("incident", "source__platform", "official_incident"))
    made = []
    for row in rows:
        ack = Acknowledgement(incident=row.incident, source=row.source, row=row)
        platform = row.source.platform.name
        if ack.before_measured_start:
            when = "before the measured start"
        else:
            when = f"{format_duration_seconds(ack.time_to_acknowledge_s)} after the measured start"
        body = f"{platform} acknowledged this incident {when}."
        if ack.official_name:
            url = safe_url(ack.official_url)
            body += f" Official incident: {ack.official_name}" + (f" ({url})." if url else ".")
        event = _claim_and_record(row, "acknowledged_notified_at", now=now, unacknowledged=False,
                                  key=f"incident-acknowledged:{row.incident.public_id}",
                                  kind=EventKind.INCIDENT_ACKNOWLEDGED,
                                  payload=_payload(ack, status="acknowledged", body=body,
                                                   occurred_at=row.seen_at or row.acknowledged_at))
        if event is not None:
            made.append(event)
    return made


def acknowledgements_notify(*, now: datetime | None = None) -> int:
    """The periodic check (beat, and the watchdog loop while the scheduler is silent)."""
    now = now or timezone.now()
    return len(unacknowledged_notify(now=now)) + len(acknowledged_notify(now=now))
