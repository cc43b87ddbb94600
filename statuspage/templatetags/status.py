"""Template filters of the public pages: status words, percentages, durations, language links, Markdown."""
from __future__ import annotations

import functools
import html
from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext, gettext_lazy as _, pgettext_lazy

from detection.incidents import format_duration_seconds
from detection.models import PARTIAL_WEIGHT
from detection.uptime import LEVELS
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
    return percent_in(ratio, get_language())


def percent_in(ratio: float | None, language: str) -> str:
    """99.95 %, never rounded up to 100 % while there was any downtime."""
    if ratio is None:
        return "—"
    value = ratio * 100
    text = f"{value:.2f}"
    if text == "100.00" and ratio < 1:
        text = "99.99"
    if language == "fr":
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
    return html.escape(date_format(day, "j M"))


@register.simple_tag(takes_context=True)
def uptime_bar(context, component) -> SafeString:
    """A component's uptime bar (component.bar, detection.uptime): an <ol> with one item per day, each
    holding its words (date, uptime, downtime by kind, maintenance, links to its incidents), for
    screen readers and for the tooltip. Written here rather than in a template: the 4,500 cells of
    a page of 50 components were nine tenths of its render time in Django's template language.
    Each </li> is left out (HTML closes an <li> at the next one or at </ol>; the DOM is the same):
    22 KB less on that page.

    A page with a year of history fills every cell of the window with words, where a page with a
    day of it says "no data": what the cells cost is what made history cost (docs/performance.md).
    So each cell's words are made in plain Python — html.escape on the only texts that come from
    the database (the component's name, incident ids and titles; the rest are Vigie's own words,
    numbers and dates), the day's figures computed once (not through Day's properties), and each
    distinct percentage, duration and incident link formatted once (small caches, below)."""
    language = get_language()
    words = _bar_words(language)
    prefix = html.escape(str(context.get("lang_prefix", "")))
    bar = component.bar
    label = words["label"] % {"name": html.escape(str(component.name)), "uptime": html.escape(percent(bar.uptime))}
    out = [f'<ol class="bar" aria-label="{label}">']
    append = out.append
    # The days before the component existed are drawn quietly, as not monitored yet (day one is
    # not a wall of grey "no data"); a day without data after that is a gap, and stays visible.
    created = getattr(component, "created_at", None)
    first_day = timezone.localtime(created, ZoneInfo(settings.TIME_ZONE)).date() if created else None
    before, nodata, none = words["before"], words["nodata"], words["none"]
    links = bar.links
    for i, (day, observed, major, partial, degraded, maintenance) in enumerate(bar.rows()):
        incidents = links.get(i, ()) if links else ()
        if not observed:  # Day.level: "nodata"
            # not monitored yet, or a gap
            early = first_day is not None and day < first_day
            if not major and not partial and not incidents and not maintenance:
                label = _day_label(day, language)
                append(f'<li class="nodata before"><span>{label}: {before}</span>' if early
                       else f'<li class="nodata"><span>{label}: {nodata}</span>')
                continue
        elif not major and not partial and not degraded and not incidents and not maintenance:
            append(f"<li><span>{_day_label(day, language)}: {none}</span>")  # most days of a long history
            continue
        else:
            early = False
        append(_day_cell(day, observed, major, partial, degraded, maintenance, incidents, early, language, prefix))
    append("</ol>")
    return mark_safe("".join(out))


# A day with figures or links: its cell is a function of what it shows and nothing else, so each is
# written once per web process and written again only when its day's figures, incidents, language or
# prefix change. A year of history gives 630 such cells on a page of 50 components where a day of it
# gives 30, and the same days come back at every render until one of them changes: the rest of a
# render's cost does not grow with history, and this is what did (docs/performance.md). The key is
# every value the cell shows; 16,384 cells (~8 MB) hold two languages of a full page (4,500 cells
# each) with room: an LRU smaller than what a cycle of renders reads would never hit.
@functools.lru_cache(maxsize=16384)
def _day_cell(day: date, observed: float, major: float, partial: float, degraded: float, maintenance: float,
              incidents: tuple, early: bool, language: str, prefix: str) -> str:
    words = _bar_words(language)
    label = _day_label(day, language)
    down = major + PARTIAL_WEIGHT * partial  # Day.down_s
    if not observed:
        return _cell(' class="nodata before"' if early else ' class="nodata"', down, incidents, label,
                     words["before"] if early else words["nodata"], maintenance, words, prefix)
    level = _level(down) if down else "up"
    head = "" if level == "up" else f' class="{level}"'
    if not down and not degraded:
        text = words["none"]
    else:
        # Day.uptime
        counted = max(0.0, observed - maintenance)
        uptime = 1 - min(down, counted) / counted if counted else None
        text = _percent_text(uptime, language)
        for seconds_, key in ((major, "major_s"), (partial, "partial_s"), (degraded, "degraded_s")):
            if seconds_:
                text += " · " + words[key] % {"d": _duration_text(seconds_)}
    return _cell(head, down, incidents, label, text, maintenance, words, prefix)


def _level(down: float) -> str:
    """Day.level of a day with data."""
    for limit, name in LEVELS:
        if down <= limit:
            return name
    return "major"


# Each distinct percentage, duration and incident link is formatted once, not once per cell: a page
# repeats them (the same incident on every day and component it touched, the same full days).
@functools.lru_cache(maxsize=4096)
def _percent_text(ratio: float | None, language: str) -> str:
    return html.escape(percent_in(ratio, language))


@functools.lru_cache(maxsize=4096)
def _duration_text(value: float) -> str:
    return html.escape(format_duration_seconds(value))


@functools.lru_cache(maxsize=4096)
def _incident_link(prefix: str, public_id: str, title: str) -> str:
    return f' · <a href="{prefix}/incidents/{html.escape(str(public_id))}">{html.escape(str(title))}</a>'


def _cell(head: str, down: float, incidents, label: str, text: str, maintenance: float, words: dict,
          prefix: str) -> str:
    """One day's <li>, with its words, maintenance and incident links (the general case)."""
    parts = [f"<li{head}", ' tabindex="0"' if down or incidents else "", f"><span>{label}: {text}"]
    if maintenance:
        parts.append(" · " + words["maintenance_s"] % {"d": _duration_text(maintenance)})
    for public_id, title in incidents:
        parts.append(_incident_link(prefix, public_id, title))
    parts.append("</span>")
    return "".join(parts)


@register.simple_tag(takes_context=True)
def past_incident_sections(context, incidents) -> SafeString:
    """The page's past incidents, one <section> each: what index.html's loop over them wrote, byte
    for byte, written here instead. A page with a year of history lists 50 of them where a page
    with a day of it lists a few, and each section cost ~0.3 ms in Django's template language
    (docs/performance.md). As in uptime_bar, html.escape on every text that comes from the
    database (the incident's id, title and impact; the update's body goes through markdown_html,
    the one door of bodies); an acknowledgement is still _ack.html's, included as before."""
    prefix = html.escape(str(context.get("lang_prefix", "")))
    language = get_language()
    zone = timezone.get_current_timezone()
    impact_label = html.escape(gettext("impact"))
    ack_template = None
    out = []
    append = out.append
    for incident in incidents:
        impact = incident.effective_impact
        ack = getattr(incident, "ack", None)
        if ack:
            if ack_template is None:
                ack_template = context.template.engine.get_template("statuspage/_ack.html")
            with context.push(ack=ack):  # what {% include … with ack=… %} does
                ack_html = ack_template.render(context)
        else:
            ack_html = "\n"
        latest = incident.latest_updates[0] if incident.latest_updates else None  # selectors.listed_incidents
        if latest is None:
            prose = ""
        else:
            body = latest.shown_body
            lang = ' lang="en"' if latest.shown_in_english else ""
            prose = f'<div class="prose"{lang}>{_markdown(body, bool(latest.automatic))}</div>'
        append(f'\n<section class="incident {html.escape(str(impact))}">\n'
               f'  <h3><a href="{prefix}/incidents/{html.escape(str(incident.public_id))}">'
               f'{html.escape(str(incident.shown_title))}</a></h3>\n'
               f'  <p class="muted">{_started_time(incident.started_at, zone, language)}'
               f' · {impact_label} {_word(impact_word, impact, language)} · '
               f'{_word(status_word, incident.status, language)}</p>\n'
               f'  {ack_html}\n'
               f'  {prose}\n</section>\n')
    return mark_safe("".join(out))


# When each incident started, as its <time> element: Django's date format asks the language for each
# part of it (~0.1 ms a date, 50 incidents on a page with a long history), and the same incidents
# come back at every render.
@functools.lru_cache(maxsize=1024)
def _started_time(started: datetime, zone: tzinfo, language: str) -> str:
    local = timezone.localtime(started, zone)  # the date filter's template_localtime
    return (f'<time datetime="{html.escape(local.isoformat(timespec="seconds"))}">'
            f'{html.escape(date_format(local, "j M Y H:i T"))}</time>')


@functools.lru_cache(maxsize=256)
def _word(words, key: str, language: str) -> str:
    """status_word or impact_word of `key` in `language`, escaped."""
    return html.escape(str(words(key)))


@functools.lru_cache(maxsize=64)
def _markdown(text: str, plain: bool) -> SafeString:
    # The same update bodies come back on many incidents ("Resolved."): each is rendered once. A
    # page's worth (50 incidents), not more: a body may be 100 KB.
    return markdown_html(text, plain=plain)


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
