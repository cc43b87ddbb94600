"""Template filters of the public pages: status words, percentages, durations, language links, Markdown."""
from __future__ import annotations

import functools
from datetime import date
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext, gettext_lazy as _, pgettext_lazy

from detection.incidents import format_duration_seconds
from statuspage.i18n import PREFIXED, has_twin
from statuspage.sanitize import clean_text, markdown_html

register = template.Library()

STATUS_WORDS = {
    "operational": _("Operational"),
    "degraded_performance": _("Degraded performance"),
    "partial_outage": _("Partial outage"),
    "major_outage": _("Major outage"),
    "under_maintenance": _("Under maintenance"),
    # nothing measured (ComponentStatus.UNKNOWN), told apart by selectors.components()
    "unknown": _("No data"),
    "not_measured": _("Not measured yet"),
    "not_monitored": _("Not monitored"),
    # incidents and maintenances
    "investigating": _("Investigating"),
    "identified": _("Identified"),
    "monitoring": _("Monitoring"),
    "resolved": _("Resolved"),
    "postmortem": _("Postmortem"),
    "scheduled": _("Scheduled"),
    "in_progress": _("In progress"),
    "verifying": _("Verifying"),
    "completed": _("Completed"),
}
# A shape beside each status word, so status is never told by colour alone.
STATUS_SYMBOLS = {"operational": "✓", "degraded_performance": "!", "partial_outage": "◐", "major_outage": "✕",
                  "under_maintenance": "⚙", "unknown": "?", "not_measured": "?", "not_monitored": "–"}
IMPACT_WORDS = {
    "none": pgettext_lazy("impact", "None"), "minor": pgettext_lazy("impact", "Minor"),
    "major": pgettext_lazy("impact", "Major"), "critical": pgettext_lazy("impact", "Critical"),
    "maintenance": pgettext_lazy("impact", "Maintenance"),
}
BANNER_WORDS = {
    "All Systems Operational": _("All Systems Operational"),
    "Service Under Maintenance": _("Service Under Maintenance"),
    "Partially Degraded Service": _("Partially Degraded Service"),
    "Minor Service Outage": _("Minor Service Outage"),
    "Major Service Outage": _("Major Service Outage"),
    "Not Measured Yet": _("Not Measured Yet"),
    "All Measured Systems Operational": _("All Measured Systems Operational"),
}


@register.filter
def status_word(status: str) -> str:
    return STATUS_WORDS.get(status, status)


@register.filter
def status_symbol(status: str) -> str:
    return STATUS_SYMBOLS.get(status, "")


@register.filter
def impact_word(impact: str) -> str:
    return IMPACT_WORDS.get(impact, impact)


@register.filter
def banner_word(description: str) -> str:
    return BANNER_WORDS.get(description, description)


@register.filter
def percent(ratio: float | None) -> str:
    """99.95 %, never rounded up to 100 % while there was any downtime."""
    if ratio is None:
        return "—"
    value = ratio * 100
    text = f"{value:.2f}"
    if text == "100.00" and ratio < 1:
        text = "99.99"
    if get_language() == "fr":
        return text.replace(".", ",") + "\u202f%"
    return text + "%"


@register.filter
def seconds(value: float) -> str:
    return format_duration_seconds(value)


@functools.lru_cache(maxsize=16)
def _bar_words(language: str) -> dict[str, str]:
    """The words of the uptime bar in `language` (the msgids the bar's template had)."""
    return {"label": gettext("%(name)s: %(uptime)s uptime over 90 days, one day per item"),
            "nodata": gettext("no data"), "none": gettext("no downtime"), "before": gettext("not monitored yet"),
            "major_s": gettext("%(d)s major outage"), "partial_s": gettext("%(d)s partial outage"),
            "degraded_s": gettext("%(d)s degraded"), "maintenance_s": gettext("%(d)s maintenance")}


@functools.lru_cache(maxsize=1024)
def _day_label(day: date, language: str) -> str:
    return conditional_escape(date_format(day, "j M"))


@register.simple_tag(takes_context=True)
def uptime_bar(context, component) -> SafeString:
    """A component's uptime bar (component.bar, detection.uptime): an <ol> with one item per day, each
    holding its words (date, uptime, downtime by kind, maintenance, links to its incidents), for
    screen readers and for the tooltip. Written here rather than in a template: the 4,500 cells of
    a page of 50 components were nine tenths of its render time in Django's template language.
    Each </li> is left out (HTML closes an <li> at the next one or at </ol>; the DOM is the same):
    22 KB less on that page."""
    language = get_language()
    words = _bar_words(language)
    prefix = escape(context.get("lang_prefix", ""))
    bar = component.bar
    label = words["label"] % {"name": conditional_escape(component.name), "uptime": conditional_escape(percent(bar.uptime))}
    out = [f'<ol class="bar" aria-label="{label}">']
    # The days before the component existed are drawn quietly, as not monitored yet (day one is
    # not a wall of grey "no data"); a day without data after that is a gap, and stays visible.
    created = getattr(component, "created_at", None)
    first_day = timezone.localtime(created, ZoneInfo(settings.TIME_ZONE)).date() if created else None
    for day in bar.days:
        level, down = day.level, day.down_s
        monitored = first_day is None or day.date >= first_day or level != "nodata"
        out.append("<li")
        if not monitored:
            out.append(' class="nodata before"')
        elif level != "up":
            out.append(f' class="{level}"')
        if down or day.incidents:
            out.append(' tabindex="0"')
        out.append(f"><span>{_day_label(day.date, language)}: ")
        if not monitored:
            out.append(words["before"])
        elif level == "nodata":
            out.append(words["nodata"])
        elif not down and not day.degraded_s:
            out.append(words["none"])
        else:
            out.append(conditional_escape(percent(day.uptime)))
            for name in ("major_s", "partial_s", "degraded_s"):
                if getattr(day, name):
                    out.append(" · " + words[name] % {"d": conditional_escape(seconds(getattr(day, name)))})
        if day.maintenance_s:
            out.append(" · " + words["maintenance_s"] % {"d": conditional_escape(seconds(day.maintenance_s))})
        for public_id, title in day.incidents:
            out.append(f' · <a href="{prefix}/incidents/{escape(public_id)}">{escape(title)}</a>')
        out.append("</span>")
    out.append("</ol>")
    return mark_safe("".join(out))


@register.simple_tag(takes_context=True)
def language_links(context) -> list[dict]:
    """The same page in every language: (code, name, url, current)."""
    from django.conf import settings

    request = context["request"]
    path = request.path
    current = get_language()
    if current in PREFIXED:
        path = path[len(current) + 1:] or "/"
    links = []
    for code, name in settings.LANGUAGES:
        url = f"/{code}{path}" if code in PREFIXED else path
        if code in PREFIXED and not has_twin(path, code):
            url = f"/{code}/"  # a page in one language only (subscribing): the other's home
        links.append({"code": code, "name": name, "url": f"{url}?hl={code}", "current": code == current})
    return links


@register.filter
def iso(value) -> str:
    """A `<time datetime>` value: ISO 8601 to the second with the page's offset (HTML allows at
    most milliseconds; Django's "c" format writes microseconds)."""
    from django.utils import timezone

    return timezone.localtime(value).isoformat(timespec="seconds") if value else ""


@register.filter(is_safe=True)
def markdown(text: str, plain: bool = False) -> SafeString:
    """`{{ update.body|markdown:update.automatic }}`: see markdown_html."""
    return markdown_html(text, plain=bool(plain))


@register.filter(is_safe=False)
def clean(text) -> str:
    """`{{ incident.title|clean }}`: without the characters XML forbids (statuspage/sanitize.py)."""
    return clean_text(text)
