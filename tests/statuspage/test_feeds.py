"""The history feeds: valid RSS and Atom (against RFC 4287's own schema), one entry per incident or
maintenance with every update in Statuspage's shape, stable ids, and a fixed number of queries."""
from __future__ import annotations

import re
import time
from datetime import timedelta, timezone as dt_timezone
from pathlib import Path

import feedparser
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape
from lxml import etree

from detection.incidents import incident_set_status
from detection.models import Incident, IncidentUpdate, Maintenance
from tests.statuspage.conftest import T0

ATOM_SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).with_name("atom.rng"))))
FEEDS = ["/history.rss", "/history.atom"]
PARAGRAPH = re.compile(r"<p><small>(\w{3}) <var data-var='date'>(\d{1,2})</var>, "
                       r"<var data-var='time'>(\d\d:\d\d)</var> (\w+)</small><br><strong>([\w ]+)</strong> - (.*?)</p>",
                       re.S)


@pytest.fixture
def history(history, settings):
    """The shared feb-2023 history (tests/statuspage/conftest.py), on a page with a known address."""
    settings.VIGIE_PAGE_NAME = "Vigie"
    settings.VIGIE_PUBLIC_URL = "https://status.example.org"
    settings.TIME_ZONE = "UTC"
    return history


def fetch(client, path: str):
    response = client.get(path)
    assert response.status_code == 200
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return response, parsed


def contents(response) -> dict[str, str]:
    """Each entry's HTML by title, read from the XML itself (feedparser would sanitize it)."""
    document = etree.fromstring(response.content)
    if document.tag == "{http://www.w3.org/2005/Atom}feed":
        ns = {"a": "http://www.w3.org/2005/Atom"}
        return {e.findtext("a:title", namespaces=ns): e.findtext("a:content[@type='html']", namespaces=ns)
                for e in document.findall("a:entry", ns)}
    return {item.findtext("title"): item.findtext("description") for item in document.findall("channel/item")}


def paragraphs(html: str) -> list[tuple[str, ...]]:
    """(month, day, time, zone, label, body) of each <p> of an entry's HTML, in order."""
    assert "".join(m.group(0) for m in PARAGRAPH.finditer(html)) == html  # nothing else in there
    return PARAGRAPH.findall(html)


@pytest.mark.parametrize("path", FEEDS)
def test_both_feeds_parse_cleanly_with_one_entry_per_incident_or_maintenance(client, history, path):
    response, parsed = fetch(client, path)
    assert parsed.version == ("atom10" if path.endswith("atom") else "rss20")
    assert parsed.feed.title == "Vigie Status - Incident History"
    assert parsed.feed.link == "https://status.example.org"
    assert parsed.feed.language == "en"
    incident = history["incident"]
    expected = [("Maintenance", history["upcoming"]), ("Maintenance", history["active"]),
                ("Maintenance", history["past"]), ("Incident", incident)]
    assert [e.title for e in parsed.entries] == [item.title for _, item in expected]
    assert [e.link for e in parsed.entries] == [f"https://status.example.org/incidents/{item.public_id}"
                                                for _, item in expected]
    if path.endswith("atom"):
        assert [e.id for e in parsed.entries] == [f"tag:status.example.org,2005:{kind}/{item.public_id}"
                                                  for kind, item in expected]
    else:
        assert [e.id for e in parsed.entries] == [e.link for e in parsed.entries]  # the guid is the page


def test_the_atom_feed_has_the_statuspage_header(client, history):
    response, parsed = fetch(client, "/history.atom")
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = parsed.feed
    assert feed.id == "tag:status.example.org,2005:/history"
    assert {(link.rel, link.href) for link in feed.links} == {
        ("alternate", "https://status.example.org"), ("self", "https://status.example.org/history.atom")}
    assert feed.author_detail.name == "Vigie"
    # The feed's date is its newest entry's update, not the upcoming maintenance's future start.
    assert feed.updated_parsed == max(e.updated_parsed for e in parsed.entries)
    (upcoming,) = [e for e in parsed.entries if e.title == "Network work"]
    assert feed.updated_parsed < time.gmtime(history["upcoming"].scheduled_for.timestamp())  # tomorrow


def test_the_rss_feed_has_dates_and_permalink_guids(client, history):
    response, parsed = fetch(client, "/history.rss")
    assert response["Content-Type"].startswith("application/rss+xml")
    incident = history["incident"]
    (entry,) = [e for e in parsed.entries if e.title == incident.title]
    assert f'<guid isPermaLink="true">{entry.link}</guid>'.encode() in response.content
    assert entry.published_parsed[:6] == incident.started_at.astimezone(dt_timezone.utc).timetuple()[:6]
    assert contents(response) == contents(client.get("/history.atom"))  # the same HTML in both


def test_the_atom_feed_validates_against_the_rfc_4287_schema(client, history):
    response = client.get("/history.atom")
    document = etree.fromstring(response.content)
    assert ATOM_SCHEMA.validate(document), ATOM_SCHEMA.error_log


def test_the_schema_rejects_a_feed_whose_entry_has_no_id(client, history):
    document = etree.fromstring(client.get("/history.atom").content)
    ns = {"atom": "http://www.w3.org/2005/Atom"}
    entry_id = document.find("atom:entry/atom:id", ns)
    entry_id.getparent().remove(entry_id)
    assert not ATOM_SCHEMA.validate(document)
    assert "entry" in str(ATOM_SCHEMA.error_log)


def test_the_feb_2023_outage_is_one_entry_with_every_update_newest_first_and_labelled(client, history):
    incident = history["incident"]
    for path in FEEDS:
        response, parsed = fetch(client, path)
        entries = [e for e in parsed.entries if e.title.startswith("Posting, reposting, following and direct")]
        assert len(entries) == 1 and entries[0].title == incident.title
        assert entries[0].published_parsed[:5] == (2023, 2, 8, 17, 1)
        updates = list(incident.updates.all())  # newest first
        shown = paragraphs(contents(response)[incident.title])
        assert len(shown) == len(updates) >= 2
        for i, (update, (month, day, clock, zone, label, body)) in enumerate(zip(updates, shown)):
            older = updates[i + 1].status if i + 1 < len(updates) else None
            assert label == ("Update" if update.status == older else update.get_status_display())
            assert (month, day, clock, zone) == ("Feb", "8", update.created_at.strftime("%H:%M"), "UTC")
            assert body == escape(update.body)
        assert shown[0][4] == "Resolved" and shown[-1][4] == "Investigating"


def test_maintenances_show_their_steps_and_cancelled_ones_are_left_out(client, history):
    response, parsed = fetch(client, "/history.atom")
    steps = {title: [(label, body) for *_, label, body in paragraphs(html)]
             for title, html in contents(response).items()}
    assert "Called off" not in steps
    assert steps["Database upgrade"] == [("Completed", "Maintenance has completed."),
                                         ("In progress", "Maintenance is in progress."),
                                         ("Scheduled", "Maintenance scheduled.")]
    assert steps["Cache rebuild"] == [("In progress", "Maintenance is in progress."),
                                      ("Scheduled", "Timelines may be slow.")]
    assert steps["Network work"] == [("Scheduled", "Maintenance scheduled.")]
    (upcoming,) = [e for e in parsed.entries if e.title == "Network work"]
    # Published when it was announced, never at its future start (Statuspage's feeds do the same).
    assert upcoming.published_parsed == time.gmtime(int(history["upcoming"].created_at.timestamp()))


def test_entries_are_newest_first(client, history):
    for path in FEEDS:
        _, parsed = fetch(client, path)
        published = [e.published_parsed for e in parsed.entries]
        assert published == sorted(published, reverse=True)


def test_entry_ids_stay_the_same_across_fetches_and_new_updates(client, history):
    def ids():
        return [e.id for path in FEEDS for e in fetch(client, path)[1].entries]

    first = ids()
    assert ids() == first
    incident = history["incident"]
    incident_set_status(incident=incident, status="resolved", body="The cause was a <limit> change & more.")
    assert ids() == first
    response, parsed = fetch(client, "/history.atom")
    shown = paragraphs(contents(response)[incident.title])
    # Same status as the update before it: Statuspage labels it "Update". The body is escaped.
    assert shown[0][4:] == ("Update", "The cause was a &lt;limit&gt; change &amp; more.")
    assert len(shown) == incident.updates.count()


def test_times_are_shown_in_the_page_time_zone(client, history, settings):
    settings.TIME_ZONE = "Europe/Paris"
    response, _ = fetch(client, "/history.atom")
    incident = history["incident"]
    month, day, clock, zone, *_ = paragraphs(contents(response)[incident.title])[-1]
    first = incident.updates.order_by("created_at").first()
    assert (month, day, zone) == ("Feb", "8", "CET")
    assert clock == (first.created_at.astimezone(dt_timezone.utc) + timedelta(hours=1)).strftime("%H:%M")


def test_query_counts_do_not_grow_with_the_number_of_entries(client, history):
    def count(path):
        with CaptureQueriesContext(connection) as queries:
            fetch(client, path)
        return len(queries)

    before = {path: count(path) for path in FEEDS}
    started = T0 + timedelta(days=1)
    for n in range(19):
        incident = Incident.objects.create(title=f"Outage {n}", started_at=started + timedelta(hours=n),
                                           detected_at=started + timedelta(hours=n, minutes=1))
        for minutes, status in ((1, "investigating"), (5, "identified"), (9, "resolved")):
            IncidentUpdate.objects.create(incident=incident, status=status, body=f"Step {minutes}",
                                          created_at=incident.started_at + timedelta(minutes=minutes))
        Maintenance.objects.create(title=f"Window {n}", scheduled_for=started + timedelta(hours=n),
                                   scheduled_until=started + timedelta(hours=n, minutes=30))
    assert Incident.objects.count() == 20
    after = {path: count(path) for path in FEEDS}
    assert after == before
    assert len(fetch(client, "/history.atom")[1].entries) == 20 + 19 + 3
