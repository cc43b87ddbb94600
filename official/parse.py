"""What a platform declares, read from its Statuspage v2 JSON or its RSS/Atom feed into one shape.

Nothing in an official answer is trusted: a wrong type, a missing field or an unparsable document
raises Unreadable with a reason in Vigie's words (the source is then "unreachable"); texts become
bounded plain text (markup stripped by nh3, control characters dropped, white space collapsed);
links are kept only when http(s). Feeds are read by feedparser.

Feeds: each entry is an official incident (id: the entry's id, else its link). It is resolved when
its title or its latest update (the start of its summary, as Statuspage's history feeds write it:
"<strong>Resolved</strong> - …") says resolved/completed/postmortem, or when it was last updated
more than FEED_STALE ago (a history feed keeps old entries that never said so). A feed declares no
overall indicator: Vigie takes `minor` while an entry is open, `none` otherwise.
"""
from __future__ import annotations

import calendar
import html
import io
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NotRequired, TypedDict
from urllib.parse import urlsplit

import nh3

INDICATORS = ("none", "minor", "major", "critical", "maintenance")
COMPONENT_STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem",
                     "scheduled", "in_progress", "verifying", "completed")
RESOLVED_STATUSES = ("resolved", "postmortem", "completed")
IMPACTS = ("none", "minor", "major", "critical", "maintenance")
MAX_ITEMS = 500  # components or incidents in one document; more is not a status page
MAX_NAME = 200
MAX_TEXT = 500
MAX_URL = 500
MAX_ID = 200
FEED_STALE = timedelta(days=2)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([,.;:!?])")
# The latest update's label, as Statuspage's history feeds write it once tags are gone:
# "Oct 3, 03:47 UTC Resolved - This incident has been resolved." (the date is optional).
_RESOLVED_WORDS = re.compile(r"^\W*(?:[A-Za-z]{3,9}\.? ?\d{1,2}, \d{1,2}:\d{2} UTC\W*)?(resolved|completed|postmortem)\b",
                             re.IGNORECASE)
_RESOLVED_TITLE = re.compile(r"\bresolved\b", re.IGNORECASE)


class Unreadable(Exception):
    """The source could not be read: `reason` says why, in Vigie's words (shown on-call)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:300]


# --- the Statuspage v2 wire format (../shared/reference/statuspage-v2.md) ------------------------

class V2Page(TypedDict):
    id: str
    name: str
    url: str
    updated_at: str


class V2Status(TypedDict):
    indicator: str
    description: str


class V2StatusDocument(TypedDict):
    page: V2Page
    status: V2Status


class V2Component(TypedDict):
    id: str
    name: str
    status: str
    updated_at: NotRequired[str]
    group: NotRequired[bool]
    group_id: NotRequired[str | None]


class V2ComponentsDocument(TypedDict):
    page: V2Page
    components: list[V2Component]


class V2IncidentUpdate(TypedDict):
    id: str
    status: str
    body: str
    created_at: str
    display_at: NotRequired[str]


class V2Incident(TypedDict):
    id: str
    name: str
    status: str
    impact: str
    created_at: str
    updated_at: str
    started_at: NotRequired[str]
    resolved_at: NotRequired[str | None]
    shortlink: NotRequired[str]
    incident_updates: NotRequired[list[V2IncidentUpdate]]
    components: NotRequired[list[V2Component]]


class V2IncidentsDocument(TypedDict):
    page: V2Page
    incidents: list[V2Incident]


# --- what Vigie keeps ----------------------------------------------------------------------------

@dataclass
class DeclaredIncident:
    external_id: str
    name: str
    url: str = ""
    impact: str = ""
    status: str = ""
    components: list[str] = field(default_factory=list)  # official component names
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    updated_at: datetime | None = None  # the latest update's time, declared
    last_update_text: str = ""

    @property
    def resolved(self) -> bool:
        return self.status in RESOLVED_STATUSES


@dataclass
class DeclaredComponent:
    name: str
    status: str
    updated_at: datetime | None = None


@dataclass
class Declared:
    """One reading of an official source."""

    indicator: str
    description: str = ""
    components: list[DeclaredComponent] = field(default_factory=list)
    incidents: list[DeclaredIncident] = field(default_factory=list)
    # Statuspage's unresolved.json lists every open incident: one missing from it was resolved.
    # A feed drops old entries whatever their state: absence says nothing.
    complete: bool = True


# --- texts, links, times -------------------------------------------------------------------------

def plain(value: Any, limit: int = MAX_TEXT) -> str:
    """Bounded plain text: markup stripped (nh3, no tag kept), entities decoded, control
    characters dropped, white space collapsed; a non-text value is empty."""
    if not isinstance(value, str) or not value:
        return ""
    value = value[: limit * 20]  # nh3 is linear, but there is no reason to read a megabyte for 500 characters
    # A tag separates words ("UTC</small><br><strong>Resolved" is "UTC Resolved").
    value = value.replace("<", " <")
    text = html.unescape(nh3.clean(value, tags=set(), clean_content_tags={"script", "style"}))
    text = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)  # the space a closing tag left ("3 , 03:47")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def link(value: Any) -> str:
    """An http(s) link as given, else "" (javascript:, data:, relative, control characters…)."""
    if not isinstance(value, str) or len(value) > MAX_URL or _CONTROL.search(value) or _SPACE.search(value):
        return ""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not host or parts.username or parts.password:
        return ""
    return value


def when(value: Any) -> datetime | None:
    """An ISO 8601 time (Statuspage writes `2022-02-15T13:14:17.744-08:00` or `…Z`) in UTC, else None."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def _identifier(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    text = _CONTROL.sub("", str(value)).strip()
    return text[:MAX_ID]


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Unreadable(f"{what} is not a JSON object")
    return value


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise Unreadable(f"{what} is not a list")
    if len(value) > MAX_ITEMS:
        raise Unreadable(f"{what} lists {len(value)} items; more than {MAX_ITEMS} is not a status page")
    return value


# --- Statuspage v2 -------------------------------------------------------------------------------

def parse_status(document: Any) -> tuple[str, str]:
    """status.json → (indicator, description)."""
    status = _mapping(_mapping(document, "status.json").get("status"), "status.json's status")
    indicator = status.get("indicator")
    if indicator not in INDICATORS:
        raise Unreadable(f"status.json's indicator is {_shown(indicator)}, not one of {', '.join(INDICATORS)}")
    return indicator, plain(status.get("description"), MAX_NAME)


def parse_components(document: Any) -> list[DeclaredComponent]:
    """components.json → the components (groups left out: their children carry the statuses)."""
    items = _list(_mapping(document, "components.json").get("components"), "components.json's components")
    found: dict[str, DeclaredComponent] = {}
    for item in items:
        if not isinstance(item, dict) or item.get("group") is True:
            continue
        name, status = plain(item.get("name"), MAX_NAME), item.get("status")
        if not name or status not in COMPONENT_STATUSES:
            continue  # one odd component does not make the page unreadable
        found.setdefault(name, DeclaredComponent(name, status, when(item.get("updated_at"))))
    return list(found.values())


def parse_incidents(document: Any) -> list[DeclaredIncident]:
    """incidents/unresolved.json (or incidents.json) → the incidents."""
    items = _list(_mapping(document, "incidents").get("incidents"), "the incidents list")
    incidents: dict[str, DeclaredIncident] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        external_id, name = _identifier(item.get("id")), plain(item.get("name"), MAX_NAME)
        if not external_id or not name:
            continue
        status = item.get("status") if item.get("status") in INCIDENT_STATUSES else ""
        impact = item.get("impact") if item.get("impact") in IMPACTS else ""
        updates = item.get("incident_updates") if isinstance(item.get("incident_updates"), list) else []
        latest = next((u for u in updates[:MAX_ITEMS] if isinstance(u, dict)), None)  # newest first
        components = item.get("components") if isinstance(item.get("components"), list) else []
        names = list(dict.fromkeys(n for n in (plain(c.get("name"), MAX_NAME) for c in components[:MAX_ITEMS]
                                               if isinstance(c, dict)) if n))
        incidents.setdefault(external_id, DeclaredIncident(
            external_id=external_id, name=name, impact=impact, status=status, components=names,
            url=link(item.get("shortlink")),
            started_at=when(item.get("started_at")) or when(item.get("created_at")),
            resolved_at=when(item.get("resolved_at")) if status in RESOLVED_STATUSES else None,
            updated_at=(when(latest.get("display_at")) or when(latest.get("created_at")) if latest else None)
            or when(item.get("updated_at")),
            last_update_text=plain(latest.get("body")) if latest else "",
        ))
    return list(incidents.values())


def parse_statuspage(status: Any, unresolved: Any, components: Any) -> Declared:
    indicator, description = parse_status(status)
    return Declared(indicator=indicator, description=description, components=parse_components(components),
                    incidents=parse_incidents(unresolved), complete=True)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(plain(value, 40))
    return "missing" if value is None else f"a {type(value).__name__}"


# --- feeds ---------------------------------------------------------------------------------------

def _feed_time(entry: Any, key: str) -> datetime | None:
    with warnings.catch_warnings():  # feedparser warns when `updated` falls back to `published`
        warnings.simplefilter("ignore", DeprecationWarning)
        parsed = entry.get(f"{key}_parsed")
    if parsed is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    except (OverflowError, ValueError, TypeError, OSError):
        return None


def parse_feed(body: bytes, *, now: datetime) -> Declared:
    """An RSS or Atom document → its entries as incidents (see the module's docstring)."""
    import feedparser  # a second or so to import: only where feeds are read

    try:
        # A stream, never bytes or text: feedparser would take a string that looks like a URL or a
        # path for one and fetch or open it.
        parsed = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # feedparser is tolerant; anything it raises is a hostile document
        raise Unreadable(f"the feed cannot be parsed ({type(exc).__name__})") from None
    version = parsed.get("version") or ""
    if not version:
        reason = "the answer is not an RSS or Atom feed"
        if body.lstrip()[:1] == b"<" and b"<html" in body[:2048].lower():
            reason = "the answer is an HTML page, not an RSS or Atom feed"
        raise Unreadable(reason)
    entries = parsed.get("entries") or []
    incidents: dict[str, DeclaredIncident] = {}
    for entry in entries[:MAX_ITEMS]:
        url = link(entry.get("link"))
        external_id = _identifier(entry.get("id")) or url
        name = plain(entry.get("title"), MAX_NAME)
        if not external_id or not name:
            continue
        summary = plain(entry.get("summary") or "", MAX_TEXT)
        published = _feed_time(entry, "published")
        updated = _feed_time(entry, "updated") or published
        stale = updated is not None and now - updated > FEED_STALE
        resolved = bool(_RESOLVED_WORDS.search(summary) or _RESOLVED_TITLE.search(name)) or stale
        incidents.setdefault(external_id, DeclaredIncident(
            external_id=external_id, name=name, url=url, status="resolved" if resolved else "investigating",
            started_at=published or updated, resolved_at=updated if resolved else None, updated_at=updated,
            last_update_text=summary,
        ))
    found = list(incidents.values())
    indicator = "minor" if any(not i.resolved for i in found) else "none"
    title = plain(parsed.get("feed", {}).get("title"), MAX_NAME)
    return Declared(indicator=indicator, description=title, incidents=found, complete=False)
