"""Public views: the status page and the Statuspage v2 JSON."""
from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Max, Min, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_safe

from probes.evaluation import STALE_AFTER_INTERVALS
from probes.models import Component, Incident, IncidentStatus, Maintenance
from statuspage import v2


def _components() -> list[Component]:
    """Components with when they were last checked and whether that is too long ago. Staleness is
    judged here too, at request time: if the scheduler or every worker stops, nothing else would
    ever mark the page stale."""
    enabled = Q(probes__enabled=True)
    components = list(Component.objects.annotate(
        last_checked=Max("probes__placements__last_run_at", filter=enabled),
        interval=Min("probes__interval_s", filter=enabled),
        probe_count=Count("probes", filter=enabled, distinct=True),
    ).order_by("position", "name"))
    now = timezone.now()
    for c in components:
        late = c.last_checked is not None and now - c.last_checked > timedelta(
            seconds=STALE_AFTER_INTERVALS * (c.interval or 60))
        c.stale = c.stale or late or c.probe_count == 0
    return components


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    components = _components()
    checked = [c.last_checked for c in components if c.last_checked]
    active = (Incident.objects.filter(resolved_at__isnull=True).prefetch_related("updates")
              .order_by("-started_at")[:10])
    return render(request, "statuspage/index.html", {
        "components": components,
        "status": v2.overall_status(components),
        "last_checked": max(checked) if checked else None,
        "stale": any(c.stale for c in components),
        "incidents": [(incident, incident.updates.all()[:1]) for incident in active],
    })


def _json(document: object) -> JsonResponse:
    response = JsonResponse(document, json_dumps_params={"ensure_ascii": False})
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def components_json(request: HttpRequest) -> JsonResponse:
    return _json(v2.components_document(_components()))


# Statuspage returns "the 50 most recent" incidents and maintenances.
RECENT = 50
UNRESOLVED = [IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING]


def _incidents(**filters) -> list:
    return list(Incident.objects.filter(**filters).order_by("-started_at")
                .prefetch_related("updates", "components")[:RECENT])


def _maintenances(now, which: str = "all") -> list:
    queryset = Maintenance.objects.prefetch_related("components").order_by("-scheduled_for")
    if which == "upcoming":
        queryset = queryset.filter(scheduled_for__gt=now, cancelled=False)
    elif which == "active":
        queryset = queryset.filter(scheduled_for__lte=now, scheduled_until__gt=now, cancelled=False)
    return list(queryset[:RECENT])


@require_safe
def status_json(request: HttpRequest) -> JsonResponse:
    components = _components()
    return _json({"page": v2.page_for(components), "status": v2.overall_status(components)})


@require_safe
def summary_json(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    components = _components()
    maintenances = _maintenances(now, "upcoming") + _maintenances(now, "active")
    return _json({
        "page": v2.page_for(components),
        "components": [v2.component_json(c) for c in components],
        "incidents": [v2.incident_json(i) for i in _incidents(status__in=UNRESOLVED)],
        "scheduled_maintenances": [v2.maintenance_json(m, now)
                                   for m in sorted(maintenances, key=lambda m: m.scheduled_for)],
        "status": v2.overall_status(components),
    })


@require_safe
def incidents_json(request: HttpRequest) -> JsonResponse:
    return _json({"page": v2.page_for(_components()), "incidents": [v2.incident_json(i) for i in _incidents()]})


@require_safe
def incidents_unresolved_json(request: HttpRequest) -> JsonResponse:
    return _json({"page": v2.page_for(_components()),
                  "incidents": [v2.incident_json(i) for i in _incidents(status__in=UNRESOLVED)]})


def _maintenances_view(which: str):
    @require_safe
    def view(request: HttpRequest) -> JsonResponse:
        now = timezone.now()
        return _json({"page": v2.page_for(_components()),
                      "scheduled_maintenances": [v2.maintenance_json(m, now) for m in _maintenances(now, which)]})
    return view


maintenances_json = _maintenances_view("all")
maintenances_upcoming_json = _maintenances_view("upcoming")
maintenances_active_json = _maintenances_view("active")


@require_safe
def incident_page(request: HttpRequest, public_id: str) -> HttpResponse:
    incident = get_object_or_404(Incident.objects.prefetch_related("updates", "components"), public_id=public_id)
    from probes.incidents import format_duration, format_duration_seconds

    return render(request, "statuspage/incident.html", {
        "incident": incident,
        "duration": format_duration(incident.duration) if incident.resolved_at else None,
        "uncertainty": format_duration_seconds(incident.duration_uncertainty_s),
        "time_to_detect": format_duration(incident.time_to_detect),
    })
