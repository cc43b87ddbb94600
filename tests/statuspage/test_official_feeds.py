"""The feeds carry the platform's acknowledgement of an incident as one more update, read back by
a real feed parser (feedparser) and a JSON Feed reader (jsonfeed-util)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import feedparser
import jsonfeed
import time_machine

from tests.statuspage.official_rows import (
    ack_make, incident_make, official_incident_make, platform_make, source_make,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=dt_timezone.utc)


def _acknowledged():
    platform = platform_make()
    source = source_make(platform)
    start = NOW - timedelta(hours=2)
    incident = incident_make(platform, started_at=start, resolved_at=NOW - timedelta(hours=1))
    official = official_incident_make(source, seen_at=start + timedelta(minutes=23))
    ack_make(incident, source, official=official, at=start + timedelta(minutes=23))
    return incident


def test_the_atom_and_rss_feeds_carry_the_acknowledgement_as_an_update(client, db):
    with time_machine.travel(NOW, tick=False):
        _acknowledged()
        for path in ("/history.atom", "/history.rss"):
            parsed = feedparser.parse(client.get(path).content)
            assert not parsed.bozo, parsed.get("bozo_exception")
            (entry,) = parsed.entries
            content = entry.content[0].value if path.endswith("atom") else entry.description
            # Newest first: Resolved, then the acknowledgement (an "Update" of Investigating).
            assert content.index("Resolved") < content.index("Acknowledged by Chirp") < content.index(
                "Investigating")
            assert "<strong>Update</strong> - Acknowledged by Chirp (official incident: Elevated error rates, " \
                   "https://status.chirp.example/incidents/abc) \u2014 23 min after the measured start." in content
            assert "10:23" in content


def test_the_json_feed_carries_it_too(client, db):
    with time_machine.travel(NOW, tick=False):
        _acknowledged()
        feed = jsonfeed.Feed.parse_string(client.get("/history.json").content.decode())
    (item,) = feed.items
    assert "Acknowledged by Chirp" in item.content_html and "23 min after the measured start" in item.content_html


def test_an_unacknowledged_incident_has_no_such_update(client, db):
    with time_machine.travel(NOW, tick=False):
        platform = platform_make()
        source = source_make(platform)
        incident = incident_make(platform, started_at=NOW - timedelta(minutes=30))
        ack_make(incident, source)
        assert "Acknowledged" not in client.get("/history.atom").content.decode()


def test_a_hostile_official_name_is_text_in_every_feed(client, db):
    with time_machine.travel(NOW, tick=False):
        incident = _acknowledged()
        incident.acknowledgement.official_incident.__class__.objects.update(
            # No NUL: PostgreSQL's text refuses it, and the reader drops control characters
            # before anything is stored (tests/official/test_parse.py).
            name="<script>alert(1)</script>\x1b[31m [x](javascript:alert(2))", url="javascript:alert(3)")
        for path in ("/history.atom", "/history.rss"):
            body = client.get(path).content
            parsed = feedparser.parse(body)
            assert not parsed.bozo, parsed.get("bozo_exception")
            assert b"<script>" not in body and b"javascript:" not in body.replace(b"[x](javascript:", b"")
            assert b'href="javascript' not in body and b"href=&quot;javascript" not in body
        item = jsonfeed.Feed.parse_string(client.get("/history.json").content.decode()).items[0]
        assert "<script>" not in item.content_html and 'href="javascript' not in item.content_html
        page = client.get(f"/incidents/{incident.public_id}").content
        assert b"<script>alert" not in page and b'href="javascript' not in page


def test_the_static_copy_lists_the_reports_and_follows_acknowledgements(db):
    from statuspage.publish import page_inputs, site_urls
    from statuspage.reports import report_id

    with time_machine.travel(NOW, tick=False):
        platform = platform_make()
        source = source_make(platform)
        start = NOW - timedelta(hours=2)
        incident = incident_make(platform, started_at=start, resolved_at=NOW - timedelta(hours=1))
        urls = site_urls()
        assert f"/reports/{report_id(platform)}/2026-11" in urls
        assert f"/fr/reports/{report_id(platform)}/2026-11" in urls
        assert f"/reports/{report_id(platform)}/2026-11.csv" in urls
        before = page_inputs(NOW)
        ack_make(incident, source, at=start + timedelta(minutes=9))
        after = page_inputs(NOW)
        page = f"/incidents/{incident.public_id}"
        assert before[page] != after[page] and before["/history/2026-11"] != after["/history/2026-11"]
        official_incident_make(source, name="Unseen", external_id="u", seen_at=NOW - timedelta(minutes=5))
        assert page_inputs(NOW)["/history/2026-11"] != after["/history/2026-11"]


def test_a_past_months_report_is_kept_until_its_month_changes(db):
    from statuspage.publish import page_inputs
    from statuspage.reports import report_id

    with time_machine.travel(NOW, tick=False):
        platform = platform_make()
        incident_make(platform, started_at=datetime(2026, 10, 5, tzinfo=dt_timezone.utc),
                      resolved_at=datetime(2026, 10, 5, 1, tzinfo=dt_timezone.utc))
        page = f"/reports/{report_id(platform)}"
        before = page_inputs(NOW)
        assert f"{page}/2026-10" in before and f"{page}/2026-10.csv" in before
        assert f"{page}/2026-11" not in before  # the month under way moves with the clock
        assert page_inputs(NOW)[f"{page}/2026-10"] == before[f"{page}/2026-10"]
        source_make(platform)  # now it says what the platform acknowledged
        assert page_inputs(NOW)[f"{page}/2026-10"] != before[f"{page}/2026-10"]
