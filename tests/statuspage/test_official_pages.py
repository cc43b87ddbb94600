"""What the platforms declare, shown beside what Vigie measured: the status page, the incident
page, history and the response cache (rows written directly; official-core writes them for real)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import lxml.html
import pytest
import time_machine

from official.models import Indicator
from tests.statuspage.official_rows import (
    ack_make, incident_make, official_incident_make, platform_make, source_make,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def page(client, path: str = "/") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return " ".join(lxml.html.fromstring(response.content).text_content().split())


def test_the_status_page_says_what_each_platform_declares_and_since_when(client, db, clock):
    source_make(platform_make(), since=NOW - timedelta(minutes=57))
    html = page(client)
    assert "Chirp declares: All systems operational since" in html
    assert "20 Nov 2026 11:03" in html
    assert "“All Systems Operational”" in html


def test_an_unreachable_source_is_never_shown_as_operational(client, db, clock):
    source_make(platform_make(), indicator=Indicator.UNREACHABLE, since=NOW - timedelta(minutes=5),
                description="All Systems Operational")
    html = page(client)
    assert "Chirp: official source unreachable since" in html
    assert "declares" not in html and "All Systems Operational”" not in html


def test_a_platform_without_a_source_shows_nothing_declared(client, db, clock):
    incident_make(platform_make(), started_at=NOW - timedelta(minutes=47))
    html = page(client)
    assert "declares" not in html and "acknowledged" not in html.lower()


def test_an_open_incident_says_how_long_it_went_unacknowledged(client, db, clock):
    platform = platform_make()
    source = source_make(platform)
    incident = incident_make(platform, started_at=NOW - timedelta(minutes=47, seconds=30))
    ack_make(incident, source)
    assert "Not acknowledged by Chirp after 47 min" in page(client)
    assert "Not acknowledged by Chirp" in page(client, f"/incidents/{incident.public_id}")


def test_an_incident_the_matcher_has_not_looked_at_yet_is_not_acknowledged_either(client, db, clock):
    platform = platform_make()
    source_make(platform)
    incident_make(platform, started_at=NOW - timedelta(minutes=12))
    assert "Not acknowledged by Chirp after 12 min" in page(client)


def test_an_acknowledged_incident_links_to_the_official_one(client, db, clock):
    platform = platform_make()
    source = source_make(platform, indicator=Indicator.MAJOR, since=NOW - timedelta(minutes=24))
    incident = incident_make(platform, started_at=NOW - timedelta(minutes=47))
    official = official_incident_make(source, seen_at=NOW - timedelta(minutes=24))
    ack_make(incident, source, official=official, at=NOW - timedelta(minutes=24))
    html = page(client)
    assert "Chirp declares: Major incident since" in html
    assert "Acknowledged by Chirp after 23 min" in html
    link = lxml.html.fromstring(client.get("/").content).xpath("//p[@class='ack']/a")[0]
    assert link.get("href") == "https://status.chirp.example/incidents/abc"
    assert set(link.get("rel").split()) == {"noopener", "nofollow"}
    assert "Elevated error rates" in link.text_content()


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<b>x</b>", " JavaScript:alert(1)"])
def test_an_official_link_that_is_not_http_is_never_drawn(client, db, clock, url):
    platform = platform_make()
    source = source_make(platform)
    incident = incident_make(platform, started_at=NOW - timedelta(minutes=47))
    official = official_incident_make(source, seen_at=NOW - timedelta(minutes=24), url="https://x.example")
    official.url = url  # what a hostile source might have slipped past
    official.save(update_fields=["url"])
    ack_make(incident, source, official=official, at=NOW - timedelta(minutes=24))
    for path in ("/", f"/incidents/{incident.public_id}"):
        tree = lxml.html.fromstring(client.get(path).content)
        assert not [a for a in tree.iter("a") if "alert" in (a.get("href") or "") or "data:" in (a.get("href") or "")]
        assert "Elevated error rates" in tree.text_content()


def test_the_incident_timeline_has_the_acknowledgement_as_an_entry(client, db, clock):
    platform = platform_make()
    source = source_make(platform)
    incident = incident_make(platform, started_at=NOW - timedelta(hours=2), resolved_at=NOW - timedelta(hours=1))
    official = official_incident_make(source, seen_at=NOW - timedelta(hours=2) + timedelta(minutes=23))
    ack_make(incident, source, official=official, at=NOW - timedelta(hours=2) + timedelta(minutes=23),
             resolved_at=NOW - timedelta(minutes=50))
    tree = lxml.html.fromstring(client.get(f"/incidents/{incident.public_id}").content)
    entries = [" ".join(li.text_content().split()) for li in tree.xpath("//ol[@class='timeline']/li")]
    # Newest first: resolved, the acknowledgement (23 min in), then the first update (1 min in).
    assert entries[0].startswith("Resolved")
    assert entries[1].startswith("Acknowledged by Chirp (official incident: Elevated error rates)")
    assert "23 min after the measured start." in entries[1]
    assert entries[2].startswith("Investigating")
    assert "Chirp declared it over at" in tree.text_content()


def test_a_resolved_incident_never_acknowledged_says_so(client, db, clock):
    platform = platform_make()
    source = source_make(platform)
    incident = incident_make(platform, started_at=NOW - timedelta(hours=2), resolved_at=NOW - timedelta(hours=1))
    ack_make(incident, source)
    assert "Never acknowledged by Chirp" in page(client)
    assert "Never acknowledged by Chirp" in page(client, f"/incidents/{incident.public_id}")


def test_an_official_incident_vigie_did_not_see_is_shown(client, db, clock):
    source = source_make(platform_make())
    official_incident_make(source, name="Degraded search", seen_at=NOW - timedelta(minutes=30))
    html = page(client)
    assert "Degraded search" in html and "Declared by Chirp; not seen by Vigie's probes" in html


def test_the_words_are_in_french_on_the_french_page(client, db, clock):
    platform = platform_make()
    source = source_make(platform, since=NOW - timedelta(minutes=57))
    incident = incident_make(platform, started_at=NOW - timedelta(minutes=47))
    ack_make(incident, source)
    html = page(client, "/fr/")
    assert "Chirp déclare : tous les systèmes sont opérationnels depuis" in html
    assert "Non reconnu par Chirp après 47 min" in html


def test_a_declared_change_renders_the_cached_page_again(client, db, clock, settings,
                                                         django_capture_on_commit_callbacks):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 60
    platform = platform_make()
    with django_capture_on_commit_callbacks(execute=True):
        source = source_make(platform)
        incident = incident_make(platform, started_at=NOW - timedelta(minutes=47))
    assert "Not acknowledged by Chirp" in page(client)
    with django_capture_on_commit_callbacks(execute=True):
        ack_make(incident, source, at=NOW - timedelta(minutes=5))
    assert "Acknowledged by Chirp after 42 min" in page(client)
    # A poll that changed nothing shown does not render the site again.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        source.last_polled_at = NOW
        source.save(update_fields=["last_polled_at", "next_poll_at"])
    assert callbacks == []


def test_the_statuspage_documents_carry_the_extras_and_stay_valid(client, history):
    import jsonschema

    from tests.statuspage.schemas import DOCUMENTS

    incident = history["incident"]
    source = source_make(incident.platform, indicator=Indicator.MINOR, since=incident.started_at,
                         description="Partial outage")
    official = official_incident_make(source, seen_at=incident.started_at + timedelta(minutes=23))
    ack_make(incident, source, official=official, at=official.first_seen_at)
    for path in ("/api/v2/summary.json", "/api/v2/status.json", "/api/v2/incidents.json"):
        jsonschema.validate(client.get(path).json(), DOCUMENTS[path], format_checker=jsonschema.FormatChecker())
    (declared,) = client.get("/api/v2/status.json").json()["vigie_declared"]
    assert declared["platform"] == incident.platform.name and declared["indicator"] == "minor"
    assert declared["description"] == "Partial outage" and declared["url"] == "https://status.chirp.example"
    ack = client.get("/api/v2/incidents.json").json()["incidents"][0]["vigie_acknowledgement"]
    assert ack["acknowledged"] is True and ack["time_to_acknowledge_s"] == 23 * 60
    assert ack["official_incident"] == {"name": "Elevated error rates",
                                        "url": "https://status.chirp.example/incidents/abc"}


def test_a_page_without_official_sources_sends_only_statuspage_fields(client, history):
    assert "vigie_declared" not in client.get("/api/v2/summary.json").json()
    assert "vigie_acknowledgement" not in client.get("/api/v2/incidents.json").json()["incidents"][0]
