"""Public views: the status page and the Statuspage v2 JSON."""
from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Max, Min, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from probes.evaluation import STALE_AFTER_INTERVALS
from probes.models import Component, Incident
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
