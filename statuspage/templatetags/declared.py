"""Template filters for what the platforms declare beside what Vigie measured (official/selectors.py)."""
from __future__ import annotations

from django import template
from django.utils.translation import gettext_lazy as _

from detection.incidents import format_duration_seconds
from official.selectors import safe_url

register = template.Library()

# The declared overall state (official.models.Indicator), in the page's words.
DECLARED_WORDS = {
    "none": _("All systems operational"),
    "minor": _("Minor incident"),
    "major": _("Major incident"),
    "critical": _("Critical incident"),
    "maintenance": _("Maintenance"),
    "unreachable": _("Official source unreachable"),
    "unknown": _("Not read yet"),
}


@register.filter
def declared_word(indicator: str) -> str:
    return DECLARED_WORDS.get(indicator, indicator)


@register.filter
def ack_minutes(ack, now) -> int:
    """`{{ ack|ack_minutes:now }}`: whole minutes to acknowledge, else unacknowledged so far."""
    return ack.minutes(now) if ack is not None else 0


@register.filter
def ack_duration(seconds: float | None) -> str:
    return format_duration_seconds(max(0.0, seconds)) if seconds is not None else "—"


@register.filter
def official_link(url: str) -> str:
    """An official page's URL, only if http(s) (else empty: no link is drawn)."""
    return safe_url(url)


@register.filter
def unacknowledged_for(ack, now) -> str:
    """`{{ ack|unacknowledged_for:now }}`: how long the incident has gone unacknowledged."""
    return format_duration_seconds(ack.unacknowledged_s(now)) if ack is not None else "—"
