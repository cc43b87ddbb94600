"""The public pages: status, incident, component (uptime and response times) and history."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from detection.incidents import format_duration, format_duration_seconds
from detection.models import Component, Incident, Maintenance
from detection.rollups import latency_series
from detection.uptime import uptime_bars
from official import selectors as official
from statuspage import charts, selectors, v2
from statuspage.cache import cached
from statuspage.reports import last_full_month, report_id

PAST_DAYS = 14
HISTORY_MONTHS = 3


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


@require_safe
@cached
def index(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    components = selectors.components()
    bars = uptime_bars(components, now=now)
    for c in components:
        c.bar = bars[c.id]
    active = selectors.listed_incidents(status__in=selectors.UNRESOLVED)
    past = [i for i in selectors.listed_incidents(resolved_at__gte=now - timedelta(days=PAST_DAYS))
            if i.status not in selectors.UNRESOLVED]
    acks = official.acknowledgements(active + past)
    for incident in active + past:
        incident.ack = acks.get(incident.id)
    return render(request, "statuspage/index.html", {
        "sections": selectors.sections(components),
        "status": v2.overall_status(components),
        "last_checked": selectors.last_checked(components),
        "stale": any(c.stale for c in components),
        "scheduler_silent": selectors.scheduler_silent(now),
        "active_incidents": active,
        "past_incidents": past,
        "past_days": PAST_DAYS,
        "maintenances_active": selectors.maintenances(now, "active"),
        "maintenances_upcoming": sorted(selectors.maintenances(now, "upcoming"), key=lambda m: m.scheduled_for),
        "declared": official.sources(),
        "unseen": official.unseen_official_incidents(since=now - timedelta(days=PAST_DAYS)),
        "now": now,
    })


@require_safe
@cached
def incident_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """An incident, or a maintenance: both have a page at /incidents/<id>, as on Statuspage."""
    incident = (Incident.objects.prefetch_related("updates", "components").filter(public_id=public_id).first())
    if incident is None:
        maintenance = Maintenance.objects.prefetch_related("components").filter(public_id=public_id).first()
        if maintenance is None:
            raise Http404("No incident or maintenance with this id.")
        now = timezone.now()
        return render(request, "statuspage/maintenance.html", {
            "maintenance": maintenance, "status": maintenance.status_at(now),
            "steps": [(name, at) for name, at, _words in v2.maintenance_steps(maintenance, now)
                      if name == "scheduled" or not maintenance.cancelled],
        })
    evidence = incident.evidence or {}
    shown = timeline(list(incident.updates.all()))
    shown = sorted([*shown, *component_joins(incident)], key=lambda entry: entry.created_at, reverse=True)
    ack = official.acknowledgement_of(incident)
    return render(request, "statuspage/incident.html", {
        "incident": incident,
        "ack": ack,
        "ack_position": ack_position(ack, shown),
        "now": timezone.now(),
        "timeline": shown,
        "duration": format_duration(incident.duration) if incident.resolved_at else None,
        "ongoing": format_duration(timezone.now() - incident.started_at) if not incident.resolved_at else None,
        "uncertainty": format_duration_seconds(incident.duration_uncertainty_s),
        "time_to_detect": format_duration(incident.time_to_detect),
        "failure_classes": sorted((evidence.get("failure_classes") or {}).items()),
        "status_code": evidence.get("status_code"),
        "locations": sorted(evidence.get("locations", [])),
    })


@require_safe
@cached
def component_page(request: HttpRequest, public_id: str) -> HttpResponse:
    component = (Component.objects.select_related("group").prefetch_related("probes")
                 .filter(public_id=public_id).first())
    if component is None:
        raise Http404("No component with this id.")
    now = timezone.now()
    component.bar = uptime_bars([component], now=now)[component.id]
    probe_ids = [p.id for p in component.probes.all()]
    day = latency_series(probe_ids, since=now - timedelta(hours=24), until=now)
    week = latency_series(probe_ids, since=now - timedelta(days=7), until=now)
    return render(request, "statuspage/component.html", {
        "component": component,
        "day_chart": charts.latency_chart(day, zone=_zone()),
        "week_chart": charts.latency_chart(week, zone=_zone(), label_every=24),
        "now": now,
    })


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=_zone())


def _next_month(start: datetime) -> datetime:
    return _month_start(start.year + start.month // 12, start.month % 12 + 1)


def _months_back(today: date, count: int) -> list[datetime]:
    months = [_month_start(today.year, today.month)]
    for _ in range(count - 1):
        first = months[-1] - timedelta(days=1)
        months.append(_month_start(first.year, first.month))
    return months


def _history(request: HttpRequest, months: list[datetime], older: datetime | None,
             stats: bool = False) -> HttpResponse:
    start, end = months[-1], _next_month(months[0])
    incidents = list(Incident.objects.filter(started_at__gte=start, started_at__lt=end).order_by("-started_at")
                     .prefetch_related("components"))
    acks = official.acknowledgements(incidents)
    for incident in incidents:
        incident.ack = acks.get(incident.id)
    unseen = [o for o in official.unseen_official_incidents(since=start, until=end) if o.first_seen_at >= start]
    maintenances = list(Maintenance.objects.filter(scheduled_for__gte=start, scheduled_for__lt=end, cancelled=False)
                        .order_by("-scheduled_for").prefetch_related("components"))
    groups = []
    for month in months:
        following = _next_month(month)
        groups.append({
            "month": month,
            "incidents": [i for i in incidents if month <= i.started_at < following],
            "maintenances": [m for m in maintenances if month <= m.scheduled_for < following],
            "unseen": [o for o in unseen if month <= o.first_seen_at < following],
        })
    earliest = Incident.objects.order_by("started_at").values_list("started_at", flat=True).first()
    show_older = older is not None and earliest is not None and earliest < months[-1]
    now = timezone.now()
    return render(request, "statuspage/history.html", {
        "months": groups, "older": older if show_older else None, "now": now,
        # Moves with the clock: on /history only (a month's page is kept by the static copy).
        "ack_stats": _with_report_ids(official.acknowledgement_stats(now)) if stats else [],
        "ack_days": official.ACK_STATS_DAYS,
        "report_month": last_full_month(now),
    })


@require_safe
@cached
def history(request: HttpRequest) -> HttpResponse:
    months = _months_back(timezone.localtime(timezone.now(), _zone()).date(), HISTORY_MONTHS)
    return _history(request, months, older=months[-1] - timedelta(days=1), stats=True)


@require_safe
@cached
def history_month(request: HttpRequest, month: str) -> HttpResponse:
    year, number = (int(part) for part in month.split("-"))
    if not 1 <= number <= 12 or year < 2000:
        raise Http404("No such month.")
    start = _month_start(year, number)
    if start > timezone.now():
        raise Http404("That month has not come yet.")
    return _history(request, [start], older=start - timedelta(days=1))


def _with_report_ids(stats: list) -> list:
    for row in stats:
        row.report_id = report_id(row.source.platform)
    return stats


# An automatic status change followed this soon by another update said nothing a reader needs.
SUPERSEDED_WITHIN = timedelta(minutes=1)


def timeline(updates: list) -> list:
    """The updates to show, newest first: an automatic component status change ("Posting: major
    outage → partial outage") superseded by a newer update within the same minute is left out (it
    said "Monitoring" the second before "Resolved"); the first update (when it began), resolutions
    and every update a person wrote always stay."""
    shown = []
    for i, update in enumerate(updates):
        newer = updates[i - 1] if i > 0 else None
        oldest = i == len(updates) - 1
        if (update.automatic and update.affected_components and newer is not None and not oldest and update.status not in ("resolved", "postmortem")
                and newer.created_at - update.created_at < SUPERSEDED_WITHIN):
            continue
        shown.append(update)
    return shown


class ComponentJoin:
    """A timeline entry: a component affected later than the incident began, from its own first
    failing run (kept in the incident's evidence, `component_starts`; the incident's start stays)."""

    joined = True

    def __init__(self, component, created_at: datetime) -> None:
        self.component = component
        self.created_at = created_at


# A component's own start this close to the incident's is the incident's start, said already.
JOIN_SHOWN_AFTER = timedelta(seconds=1)


def component_joins(incident: Incident) -> list[ComponentJoin]:
    """The components whose own start in the incident is later than the incident's, oldest first."""
    starts = (incident.evidence or {}).get("component_starts") or {}
    joins = []
    for component in incident.components.all():
        try:
            at = datetime.fromisoformat(starts[component.name])
        except (KeyError, TypeError, ValueError):
            continue
        if timezone.is_naive(at):
            at = at.replace(tzinfo=dt_timezone.utc)
        if at - incident.started_at >= JOIN_SHOWN_AFTER and (incident.resolved_at is None or at < incident.resolved_at):
            joins.append(ComponentJoin(component, at))
    return sorted(joins, key=lambda join: join.created_at)


def ack_position(ack, updates: list) -> int | None:
    """Where the acknowledgement goes in the timeline (newest first): before the first update
    older than it; None when there is nothing to place (not acknowledged)."""
    if ack is None or not ack.acknowledged:
        return None
    return next((i for i, u in enumerate(updates) if u.created_at <= ack.acknowledged_at), len(updates))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 as a Vigie page in the reader's language, with the way back to the status; never the
    exception's text (it may name internals)."""
    return render(request, "404.html", status=404)


# If even the error page cannot be drawn (the template or a context processor fails), this is sent.
BARE_500 = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Server error</title>"
            "<h1>Something went wrong</h1><p>This page could not be shown because of an error on our side. "
            "<a href=\"/\">See the current status</a>.</p></html>")


def server_error(request: HttpRequest) -> HttpResponse:
    """500 as a Vigie page: what happened in words and the link to the status, no stack or detail."""
    try:
        return render(request, "500.html", status=500)
    except Exception:  # noqa: BLE001 (the error page must not fail in turn)
        return HttpResponse(BARE_500, status=500)
