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
