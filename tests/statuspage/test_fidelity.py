"""Vigie's documents behave as real Statuspage pages do, one rule per test, each written from
shared/reference/statuspage-v2.md (the shapes) and issue 21 (what real pages were seen doing)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import feedparser
import pytest
from django.utils import timezone
from django.utils.html import escape

from detection.incidents import incident_set_status
from detection.models import Component, ComponentStatus, IncidentUpdate, Maintenance
from statuspage import v2

ALL_JSON = ["/api/v2/summary.json", "/api/v2/status.json", "/api/v2/components.json", "/api/v2/incidents.json",
            "/api/v2/incidents/unresolved.json", "/api/v2/scheduled-maintenances.json",
            "/api/v2/scheduled-maintenances/upcoming.json", "/api/v2/scheduled-maintenances/active.json"]
FEEDS = ["/history.rss", "/history.atom"]
PUBLIC = "https://status.example.org"


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.VIGIE_PUBLIC_URL = PUBLIC


def json_entries(client) -> list[dict]:
    """The JSON Feed's items, with the fields the XML feeds are compared on."""
    return [{"id": item["url"], "title": item["title"], "published": parse(item["date_published"]).utctimetuple()}
            for item in client.get("/history.json").json()["items"]]


def stamps(document) -> list[str]:
    """Every timestamp in a document, found by field name."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key.endswith("_at") or key in ("scheduled_for", "scheduled_until"):
                if isinstance(value, str):
                    found.append(value)
            else:
                found += stamps(value)
    elif isinstance(document, list):
        for value in document:
            found += stamps(value)
    return found


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- status: indicator and description ----------------------------------------------------------

@pytest.mark.parametrize(("statuses", "indicator", "description"), [
    (["operational", "operational"], "none", "All Systems Operational"),
    (["operational", "under_maintenance"], "maintenance", "Service Under Maintenance"),
    (["under_maintenance", "degraded_performance"], "minor", "Partially Degraded Service"),
    (["operational", "partial_outage", "degraded_performance"], "major", "Minor Service Outage"),
    (["major_outage", "under_maintenance", "partial_outage"], "critical", "Major Service Outage"),
])
def test_the_page_status_uses_statuspage_indicators_and_words(statuses, indicator, description):
    components = [Component(name=str(i), status=s) for i, s in enumerate(statuses)]
    assert v2.overall_status(components) == {"indicator": indicator, "description": description}


def test_the_indicator_is_maintenance_while_a_maintenance_is_in_progress(client, history):
    # The fixture's "Cache rebuild" is in progress on Timeline; everything else is operational.
    assert Component.objects.get(name="Timeline").status == ComponentStatus.MAINTENANCE
    assert set(Component.objects.exclude(name="Timeline").values_list("status", flat=True)) == {"operational"}
    for path in ("/api/v2/status.json", "/api/v2/summary.json"):
        assert client.get(path).json()["status"] == {"indicator": "maintenance",
                                                     "description": "Service Under Maintenance"}


# --- timestamps and the page object -------------------------------------------------------------

def test_a_utc_page_writes_milliseconds_and_z_and_names_its_zone_etc_utc(client, history):
    for path in ALL_JSON:
        document = client.get(path).json()
        assert document["page"]["time_zone"] == "Etc/UTC"
        found = stamps(document)
        assert found, path
        for stamp in found:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), (path, stamp)


def test_a_page_in_another_zone_writes_its_offset(client, history, settings):
    settings.TIME_ZONE = "America/Tijuana"
    document = client.get("/api/v2/incidents.json").json()
    assert document["page"]["time_zone"] == "America/Tijuana"
    assert document["incidents"][0]["started_at"].endswith("-08:00")  # February: Pacific standard time
    assert re.fullmatch(r".*T\d\d:\d\d:\d\d\.\d{3}-08:00", document["incidents"][0]["started_at"])


def test_the_page_updated_at_moves_with_an_incident_update(client, history):
    before = parse(client.get("/api/v2/status.json").json()["page"]["updated_at"])
    update = incident_set_status(incident=history["incident"], status="postmortem", body="What we learnt.")
    after = parse(client.get("/api/v2/status.json").json()["page"]["updated_at"])
    assert after > before
    assert abs(after - update.created_at) < timedelta(seconds=1)


def test_resolved_at_is_never_earlier_than_the_last_update(client, history):
    incident = history["incident"]
    # A late update written after the time Vigie dated the end (runs back), as the monitor does.
    IncidentUpdate.objects.create(incident=incident, status="resolved", body="Confirmed.",
                                  created_at=incident.resolved_at + timedelta(minutes=3))
    (document,) = client.get("/api/v2/incidents.json").json()["incidents"]
    last = max(parse(u["created_at"]) for u in document["incident_updates"])
    assert parse(document["resolved_at"]) >= last
    assert parse(document["resolved_at"]) == last.replace(microsecond=last.microsecond // 1000 * 1000)


# --- components, shortlinks ---------------------------------------------------------------------

def test_component_positions_count_from_one(client, history):
    components = client.get("/api/v2/components.json").json()["components"]
    positions = [c["position"] for c in components]
    assert min(positions) == 1
    assert all(p >= 1 for p in positions)


def test_a_maintenance_has_its_own_shortlink_that_opens_its_page(client, history):
    maintenances = client.get("/api/v2/scheduled-maintenances.json").json()["scheduled_maintenances"]
    links = [m["shortlink"] for m in maintenances]
    assert len(set(links)) == len(links)
    for maintenance in maintenances:
        assert maintenance["shortlink"] == f"{PUBLIC}/incidents/{maintenance['id']}"
        page = client.get(maintenance["shortlink"].removeprefix(PUBLIC))
        assert page.status_code == 200 and maintenance["name"] in page.content.decode()


# --- feeds ---------------------------------------------------------------------------------------

def test_no_feed_entry_is_dated_in_the_future_and_order_is_by_publication(client, history):
    now = timezone.now()
    for path in FEEDS:
        parsed = feedparser.parse(client.get(path).content)
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        published = [e.published_parsed for e in parsed.entries]
        assert published == sorted(published, reverse=True), path
        assert max(published) <= now.utctimetuple(), path
        assert parsed.entries[0].title == "Network work"  # the newest announcement, though it starts tomorrow
    items = json_entries(client)
    assert [i["published"] for i in items] == sorted((i["published"] for i in items), reverse=True)
    assert items[0]["title"] == "Network work" and items[0]["published"] <= now.utctimetuple()


def test_entries_published_at_the_same_moment_keep_one_order(client, history):
    at = timezone.now() - timedelta(hours=1)
    for title in ("Alpha", "Beta", "Gamma"):
        Maintenance.objects.create(title=title, created_at=at, scheduled_for=at + timedelta(days=4),
                                   scheduled_until=at + timedelta(days=4, hours=1))
    orders = {path: [e.link for e in feedparser.parse(client.get(path).content).entries] for path in FEEDS}
    orders["/history.json"] = [i["id"] for i in json_entries(client)]
    assert len({tuple(links) for links in orders.values()}) == 1  # the three feeds agree
    # Ties are broken by id, so the order is the same on every fetch and in every process.
    tied = [link.rsplit("/", 1)[1] for link in orders["/history.rss"]
            if link.rsplit("/", 1)[1] in set(Maintenance.objects.filter(created_at=at).values_list("public_id", flat=True))]
    assert len(tied) == 3 and tied == sorted(tied, reverse=True)
    assert [e.link for e in feedparser.parse(client.get("/history.rss").content).entries] == orders["/history.rss"]


def test_the_json_feed_carries_the_same_items_as_rss_and_atom(client, history):
    response = client.get("/history.json")
    assert response["Content-Type"].startswith("application/feed+json")
    document = response.json()
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == f"{PUBLIC}/history.json"
    atom = feedparser.parse(client.get("/history.atom").content)
    rss = feedparser.parse(client.get("/history.rss").content)
    assert [i["id"] for i in document["items"]] == [e.id for e in atom.entries]
    assert [i["url"] for i in document["items"]] == [e.link for e in rss.entries]
    assert [i["title"] for i in document["items"]] == [e.title for e in atom.entries]
    assert [parse(i["date_published"]).utctimetuple() for i in document["items"]] == \
        [e.published_parsed for e in atom.entries]
    assert [parse(i["date_modified"]).utctimetuple() for i in document["items"]] == \
        [e.updated_parsed for e in atom.entries]
    # The same HTML as Atom's <content>, once both are read back by a parser.
    for item, entry in zip(document["items"], atom.entries):
        wrapped = feedparser.parse(f'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="html">'
                                   f'{escape(item["content_html"])}</content></entry></feed>')
        assert wrapped.entries[0].content[0].value == entry.content[0].value


def test_pages_announce_the_three_feeds(client, history):
    html = client.get("/").content.decode()
    for kind, path in (("application/atom+xml", "/history.atom"), ("application/rss+xml", "/history.rss"),
                       ("application/feed+json", "/history.json")):
        assert re.search(rf'<link rel="alternate" type="{re.escape(kind)}"[^>]*href="{path}"', html), kind
