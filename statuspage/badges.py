"""SVG badges, shields.io style: the page's or a component's status, and its 90-day uptime."""
from __future__ import annotations

from xml.sax.saxutils import escape

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from detection.models import Component
from detection.uptime import ratio, uptime_bars
from statuspage import selectors, v2
from statuspage.cache import cached

# White text on each colour keeps WCAG AA contrast (≥ 4.5:1).
COLOURS = {"operational": "#1a7f37", "degraded_performance": "#8a5a00", "partial_outage": "#b34700",
           "major_outage": "#c21f2c", "under_maintenance": "#1d5fa8", "unknown": "#57606a"}
WORDS = {"operational": "operational", "degraded_performance": "degraded", "partial_outage": "partial outage",
         "major_outage": "major outage", "under_maintenance": "maintenance", "unknown": "no data"}
INDICATOR_STATUS = {"none": "operational", "minor": "degraded_performance", "major": "partial_outage",
                    "critical": "major_outage", "maintenance": "under_maintenance"}


def _text_width(text: str) -> int:
    """Width of `text` in 11 px Verdana, near enough: narrow letters are narrow."""
    narrow, wide = set("iljtf.,:;!|' ()1"), set("mwMW%@")
    return int(sum(3.5 if ch in narrow else 10 if ch in wide else 7 for ch in text)) + 10


def badge_svg(label: str, value: str, colour: str) -> str:
    left, right = _text_width(label), _text_width(value)
    width = left + right
    label_x, value_x = left / 2, left + right / 2
    label, value = escape(label, {'"': "&quot;"}), escape(value, {'"': "&quot;"})  # text and attribute
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{label}: {value}"><title>{label}: {value}</title>'
        f'<rect width="{left}" height="20" fill="#3d444d"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x}" y="14">{label}</text><text x="{value_x}" y="14">{value}</text></g></svg>'
    )


def _svg(body: str) -> HttpResponse:
    response = HttpResponse(body, content_type="image/svg+xml; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    # Opened directly, an SVG is a document: it may run nothing and load nothing.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def _uptime_colour(value: float | None) -> str:
    if value is None:
        return COLOURS["unknown"]
    if value >= 0.999:
        return COLOURS["operational"]
    if value >= 0.99:
        return COLOURS["degraded_performance"]
    if value >= 0.95:
        return COLOURS["partial_outage"]
    return COLOURS["major_outage"]


def _uptime_text(value: float | None) -> str:
    if value is None:
        return "no data"
    text = f"{value * 100:.2f}%"
    return "99.99%" if text == "100.00%" and value < 1 else text


def _component(public_id: str) -> Component:
    component = next((c for c in selectors.components() if c.public_id == public_id), None)
    if component is None:
        raise Http404("No component with this id.")
    return component


@require_safe
@cached
def page_status(request: HttpRequest) -> HttpResponse:
    components = selectors.components()
    status = v2.overall_status(components)
    if any(c.stale or c.status == "unknown" for c in components) and status["indicator"] == "none":
        return _svg(badge_svg("status", "monitoring delayed", COLOURS["unknown"]))
    return _svg(badge_svg("status", status["description"].lower(), COLOURS[INDICATOR_STATUS[status["indicator"]]]))


@require_safe
@cached
def page_uptime(request: HttpRequest) -> HttpResponse:
    components = selectors.components()
    bars = uptime_bars(components, now=timezone.now())
    value = ratio([day for bar in bars.values() for day in bar.days])
    return _svg(badge_svg("uptime 90d", _uptime_text(value), _uptime_colour(value)))


@require_safe
@cached
def component_status(request: HttpRequest, public_id: str) -> HttpResponse:
    component = _component(public_id)
    if component.stale and component.status == "operational":
        return _svg(badge_svg(component.name, "monitoring delayed", COLOURS["unknown"]))
    return _svg(badge_svg(component.name, WORDS[component.status], COLOURS[component.status]))


@require_safe
@cached
def component_uptime(request: HttpRequest, public_id: str) -> HttpResponse:
    component = _component(public_id)
    value = uptime_bars([component], now=timezone.now())[component.id].uptime
    return _svg(badge_svg(f"{component.name} 90d", _uptime_text(value), _uptime_colour(value)))
