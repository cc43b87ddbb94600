"""Public views: the status page and the Statuspage v2 JSON."""
from __future__ import annotations

from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from probes.models import Component, Incident
from statuspage import v2


def _components() -> list[Component]:
    return list(Component.objects.annotate(last_checked=Max("probes__placements__last_run_at")).order_by("position", "name"))


@require_GET
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


@require_GET
def components_json(request: HttpRequest) -> JsonResponse:
    return _json(v2.components_document(_components()))
