"""The Statuspage v2 public JSON endpoints, open to any origin."""
from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from official import selectors as official
from statuspage import selectors, v2
from statuspage.cache import cached


def _json(document: object) -> JsonResponse:
    response = JsonResponse(document, json_dumps_params={"ensure_ascii": False})
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _declared() -> dict:
    """Vigie's `vigie_declared` (what each platform declares), only where a platform has an
    official source: a page without one sends exactly Statuspage's fields."""
    sources = official.sources()
    return {"vigie_declared": v2.declared_json(sources)} if sources else {}


@require_safe
@cached
def components_json(request: HttpRequest) -> JsonResponse:
    return _json(v2.components_document(selectors.components()))


@require_safe
@cached
def status_json(request: HttpRequest) -> JsonResponse:
    components = selectors.components()
    return _json({"page": v2.page_for(components), "status": v2.overall_status(components),
                  **_declared()})


@require_safe
@cached
def summary_json(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    components = selectors.components()
    maintenances = selectors.maintenances(now, "upcoming") + selectors.maintenances(now, "active")
    return _json({
        "page": v2.page_for(components),
        "components": v2.components_list(components),
        "incidents": v2.incidents_json(selectors.unresolved_incidents()),
        "scheduled_maintenances": [v2.maintenance_json(m, now)
                                   for m in sorted(maintenances, key=lambda m: m.scheduled_for)],
        "status": v2.overall_status(components),
        **_declared(),
    })


@require_safe
@cached
def incidents_json(request: HttpRequest) -> JsonResponse:
    return _json({"page": v2.page_for(selectors.components()),
                  "incidents": v2.incidents_json(selectors.incidents())})


@require_safe
@cached
def incidents_unresolved_json(request: HttpRequest) -> JsonResponse:
    return _json({"page": v2.page_for(selectors.components()),
                  "incidents": v2.incidents_json(selectors.unresolved_incidents())})


def _maintenances_view(which: str):
    @require_safe
    @cached
    def view(request: HttpRequest) -> JsonResponse:
        now = timezone.now()
        return _json({"page": v2.page_for(selectors.components()),
                      "scheduled_maintenances": [v2.maintenance_json(m, now)
                                                 for m in selectors.maintenances(now, which)]})
    view.__name__ = f"maintenances_{which}_json"
    return view


maintenances_json = _maintenances_view("all")
maintenances_upcoming_json = _maintenances_view("upcoming")
maintenances_active_json = _maintenances_view("active")
