"""The incident history as feeds, shaped like Statuspage's /history.rss and /history.atom."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import HttpRequest, JsonResponse
from django.utils import feedgenerator, timezone
from django.views.decorators.http import require_safe

from detection.incidents import format_duration_seconds
from detection.models import Incident, Maintenance
from official import selectors as official
from statuspage import v2
from statuspage.sanitize import clean_text, markdown_html

# Statuspage's history feeds hold the 50 most recent incidents and maintenances.
RECENT = 50
# The feeds are in English whatever the reader's language, so month names are not left to the locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Step:
    """One update of an entry's timeline."""

    status: str
    at: datetime
    body: str
    plain: bool = False  # Vigie's own text, not a person's Markdown


@dataclass(frozen=True)
class Entry:
    """An incident or a maintenance, as one feed entry."""

    kind: str  # "Incident" or "Maintenance": the word in the Atom id, as Statuspage writes it
    public_id: str
    title: str
    published: datetime
    updated: datetime
    steps: list[Step]  # newest first

    @property
    def link(self) -> str:
        return f"{settings.VIGIE_PUBLIC_URL}/incidents/{self.public_id}"

    @property
    def tag(self) -> str:
        # The public id never changes, so neither does the entry's id when updates are added.
        return f"tag:{_host()},2005:{self.kind}/{self.public_id}"


def _host() -> str:
    return urlsplit(settings.VIGIE_PUBLIC_URL).hostname or "localhost"


def step_label(status: str, older: str | None) -> str:
    """Statuspage's label: the title-cased status, or "Update" when the status did not change."""
    if status == older:
        return "Update"
    return status.replace("_", " ").capitalize()


def content_html(steps: list[Step]) -> str:
    """One <p> per update, newest first, with the time in the page's time zone. The body is rendered
    as on the incident page; its first paragraph joins the label, as in Statuspage's one-line updates."""
    zone = ZoneInfo(settings.TIME_ZONE)
    paragraphs = []
    for i, step in enumerate(steps):
        older = steps[i + 1].status if i + 1 < len(steps) else None
        local = timezone.localtime(step.at, zone)
        body = str(markdown_html(step.body, plain=step.plain))
        first, rest = (body[3:].split("</p>", 1) + [""])[:2] if body.startswith("<p>") else ("", body)
        paragraphs.append(
            f"<p><small>{MONTHS[local.month - 1]} <var data-var='date'>{local.day}</var>, "
            f"<var data-var='time'>{local:%H:%M}</var> {local:%Z}</small><br>"
            f"<strong>{step_label(step.status, older)}</strong> - {first}</p>{rest.strip()}")
    return "".join(paragraphs)


def ack_words(ack: official.Acknowledgement) -> str:
    """The acknowledgement in the feeds' words (English, as the feeds are): who, which official
    incident (its http(s) address as text, never as a link a platform chose), how long after the
    measured start."""
    words = f"Acknowledged by {ack.platform_name}"
    if ack.official_name:
        words += f" (official incident: {ack.official_name}"
        words += f", {ack.official_url})" if ack.official_url else ")"
    if ack.before_measured_start:
        return words + ", before the measured start."
    return words + f" — {format_duration_seconds(ack.time_to_acknowledge_s)} after the measured start."


def ack_steps(ack: official.Acknowledgement, steps: list[Step]) -> list[Step]:
    """The incident's steps with the acknowledgement as one more update, in time order (newest
    first), under the status the incident had then (so its label reads "Update")."""
    older = [s for s in steps if s.at <= ack.acknowledged_at]
    status = older[0].status if older else (steps[-1].status if steps else "investigating")
    step = Step(status, ack.acknowledged_at, ack_words(ack), plain=True)
    return sorted(steps + [step], key=lambda s: s.at, reverse=True)


def history_entries(now: datetime) -> list[Entry]:
    """The newest incidents and maintenances (cancelled ones left out), newest first by publication,
    in six queries. A maintenance is published when it is announced (created), not at its start: an
    upcoming one is never dated in the future at the top of the feed. Ties keep one order (by id)."""
    incidents = list(Incident.objects.order_by("-started_at").prefetch_related("updates")[:RECENT])
    acks = official.acknowledgements(incidents)
    entries = []
    for i in incidents:
        steps = [Step(u.status, u.created_at, u.body, u.automatic) for u in i.updates.all()]
        updated = i.updated_at
        ack = acks.get(i.id)
        if ack is not None and ack.acknowledged:
            steps = ack_steps(ack, steps)
            updated = max(updated, ack.row.seen_at or ack.acknowledged_at)
        entries.append(Entry("Incident", i.public_id, i.title, i.started_at, updated, steps))
    # maintenance_json reads the components, hence their prefetch; its steps are computed, not queried.
    for m in Maintenance.objects.filter(cancelled=False).order_by("-scheduled_for").prefetch_related(
            "components__group")[:RECENT]:
        document = v2.maintenance_json(m, now)
        steps = [Step(u["status"], datetime.fromisoformat(u["created_at"]), u["body"])
                 for u in document["incident_updates"]]
        entries.append(Entry("Maintenance", m.public_id, m.title, m.created_at,
                             datetime.fromisoformat(document["updated_at"]), steps))
    entries.sort(key=lambda e: (e.published, e.public_id), reverse=True)
    return entries[:RECENT]


class _NewestUpdate:
    """The feed's date is its newest entry's update: an upcoming maintenance is published in the
    future, and Django's default (the latest of all dates) would date the feed, and Last-Modified, there."""

    def latest_post_date(self) -> datetime:
        return max((item["updateddate"] for item in self.items), default=timezone.now())


class HistoryRss201rev2Feed(_NewestUpdate, feedgenerator.Rss201rev2Feed):
    pass


class HistoryAtom1Feed(_NewestUpdate, feedgenerator.Atom1Feed):
    """Atom with the updates as <content type="html">, where Django would write a <summary>."""

    def add_item_elements(self, handler, item) -> None:
        super().add_item_elements(handler, {**item, "description": None})
        handler.addQuickElement("content", item["description"], {"type": "html"})


class HistoryRSS(Feed):
    """/history.rss: RSS 2.0, each item's guid its incident page."""

    feed_type = HistoryRss201rev2Feed
    extension = "rss"
    language = "en"  # not the reader's: the labels and dates are written in English
    item_guid_is_permalink = True

    def title(self) -> str:
        return clean_text(f"{settings.VIGIE_PAGE_NAME} Status - Incident History")

    def description(self) -> str:
        return self.title()

    def link(self) -> str:
        return settings.VIGIE_PUBLIC_URL

    def feed_url(self) -> str:
        return f"{settings.VIGIE_PUBLIC_URL}/history.{self.extension}"

    def author_name(self) -> str:
        return clean_text(settings.VIGIE_PAGE_NAME)

    def items(self) -> list[Entry]:
        return history_entries(timezone.now())

    def item_title(self, entry: Entry) -> str:
        return clean_text(entry.title)

    def item_link(self, entry: Entry) -> str:
        return entry.link

    def item_guid(self, entry: Entry) -> str:
        return entry.link

    def item_description(self, entry: Entry) -> str:
        return clean_text(content_html(entry.steps))

    def item_pubdate(self, entry: Entry) -> datetime:
        return entry.published

    def item_updateddate(self, entry: Entry) -> datetime:
        return entry.updated


class HistoryAtom(HistoryRSS):
    """/history.atom: Atom 1.0, with tag: ids that stay the same as the entry gets updates."""

    feed_type = HistoryAtom1Feed
    extension = "atom"

    def feed_guid(self) -> str:
        return f"tag:{_host()},2005:/history"

    def item_guid(self, entry: Entry) -> str:
        return entry.tag


def _rfc3339(value: datetime) -> str:
    return timezone.localtime(value, ZoneInfo("UTC")).isoformat(timespec="seconds").replace("+00:00", "Z")


def json_feed_document(now: datetime) -> dict:
    """The history as JSON Feed 1.1 (https://jsonfeed.org/version/1.1): the same entries, ids,
    links and HTML as the RSS and Atom feeds."""
    entries = history_entries(now)
    title = f"{settings.VIGIE_PAGE_NAME} Status - Incident History"
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "description": title,
        "home_page_url": settings.VIGIE_PUBLIC_URL,
        "feed_url": f"{settings.VIGIE_PUBLIC_URL}/history.json",
        "language": "en",
        "authors": [{"name": settings.VIGIE_PAGE_NAME}],
        "items": [{
            "id": entry.tag,
            "url": entry.link,
            "title": entry.title,
            "content_html": content_html(entry.steps),
            "date_published": _rfc3339(entry.published),
            "date_modified": _rfc3339(entry.updated),
        } for entry in entries],
    }


@require_safe
def history_json(request: HttpRequest) -> JsonResponse:
    """/history.json: the history as a JSON Feed, beside /history.rss and /history.atom."""
    response = JsonResponse(json_feed_document(timezone.now()), json_dumps_params={"ensure_ascii": False},
                            content_type="application/feed+json; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    return response
