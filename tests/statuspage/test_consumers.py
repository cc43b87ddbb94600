"""Vigie's documents read by real third-party consumers, installed from PyPI (requirements-test.txt),
over HTTP from a live server holding an incident with its updates, maintenances past, in progress
and upcoming, and an open incident:

- aRez (`arez.statuspage`), a Statuspage client library: it parses every timestamp with
  `%Y-%m-%dT%H:%M:%S.%f%z` and indexes its colour tables by status, indicator and impact;
- statuspage-prometheus-exporter, which polls summary.json the way it polls real Statuspage pages;
- feedparser for /history.rss and /history.atom, and jsonfeed-util for /history.json.

No mock: each consumer does its own HTTP request to the live server."""
from __future__ import annotations

import asyncio

import feedparser
import jsonfeed
import pytest
import requests
from arez.statuspage import StatusPage
from statuspage_prometheus_exporter.service_checker import check_status_page_service

from datetime import timedelta

from detection.models import Incident
from tests.statuspage.official_rows import ack_make, official_incident_make, source_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(live_server, history, settings):
    """The history fixture's page, plus an open incident, served over HTTP."""
    settings.VIGIE_PUBLIC_URL = live_server.url
    incident = history["incident"]
    Incident.objects.filter(id=incident.id).update(resolved_at=None, status="identified")
    # What the platform declares (Vigie's extra fields, vigie_declared and vigie_acknowledgement):
    # the consumers must read the documents as before.
    source = source_make(incident.platform, indicator="major", since=incident.started_at)
    official = official_incident_make(source, seen_at=incident.started_at + timedelta(minutes=3))
    ack_make(incident, source, official=official, at=official.first_seen_at)
    return live_server.url


def test_arez_reads_the_summary(served, history):
    async def read():
        async with StatusPage(served) as page:
            return await page.get_status()

    status = asyncio.run(read())
    assert status.status == "Service Under Maintenance"
    assert status.impact == "Maintenance"
    assert status.name == "Vigie"
    assert status.component("Timeline").status == "Under Maintenance"
    assert status.component("Posting").group.name == "Writes"
    (incident,) = status.incidents
    assert incident.status == "Identified" and incident.impact == "Critical"
    assert [u.status for u in incident.updates][-1] == "Investigating"  # newest first, as aRez expects
    assert {c.name for c in incident.components} == {"Posting", "Reposting", "Following", "Direct messages"}
    maintenances = {m.name: m for m in status.maintenances}
    assert set(maintenances) == {"Cache rebuild", "Network work"}
    assert maintenances["Cache rebuild"].status == "In Progress"
    assert maintenances["Network work"].scheduled_for > maintenances["Cache rebuild"].scheduled_for
    assert status.updated_at is not None


def test_the_prometheus_exporter_reads_the_summary(served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the exporter keeps a cache/ folder in its working directory
    result = check_status_page_service("vigie", {"url": f"{served}/api/v2/summary.json"})
    assert result["success"] is True, result.get("error")
    # An open critical incident: the exporter reports it and marks the service down.
    assert result["status"] == 0
    assert result["raw_status"] == "critical"
    (incident,) = result["incident_metadata"]
    assert incident["status"] == "identified" and incident["shortlink"].startswith(f"{served}/incidents/")
    assert requests.get(incident["shortlink"], timeout=10).status_code == 200
    # The exporter lists the maintenances that are not completed: the summary holds no other.
    assert {m["name"] for m in result["maintenance_metadata"]} == {"Cache rebuild", "Network work"}
    names = {c["name"]: c["status_value"] for c in result["component_metadata"]}
    assert names["Timeline"] == 0


def test_the_prometheus_exporter_sees_an_operational_page_as_up(live_server, db, settings, tmp_path, monkeypatch):
    from detection.simulation import demo_layout

    demo_layout(locations=["atlanta"])
    monkeypatch.chdir(tmp_path)
    result = check_status_page_service("vigie", {"url": f"{live_server.url}/api/v2/summary.json"})
    assert result["success"] is True, result.get("error")
    assert (result["status"], result["raw_status"], result["status_text"]) == (1, "none", "Operational")


@pytest.mark.parametrize("path", ["/history.rss", "/history.atom"])
def test_feedparser_reads_the_xml_feeds(served, path):
    parsed = feedparser.parse(requests.get(served + path, timeout=10).content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Vigie Status - Incident History"
    titles = [e.title for e in parsed.entries]
    assert {"Network work", "Cache rebuild", "Database upgrade"} <= set(titles)
    assert any(t.startswith("Posting, reposting") for t in titles)
    assert all(e.link.startswith(f"{served}/incidents/") for e in parsed.entries)


def test_a_json_feed_reader_reads_the_same_items(served):
    response = requests.get(served + "/history.json", timeout=10)
    assert response.headers["Content-Type"].startswith("application/feed+json")
    feed = jsonfeed.Feed.parse_string(response.text)
    assert feed.title == "Vigie Status - Incident History"
    assert feed.feed_url == f"{served}/history.json"
    atom = feedparser.parse(requests.get(served + "/history.atom", timeout=10).content)
    assert [item.url for item in feed.items] == [e.link for e in atom.entries]
    assert [item.id for item in feed.items] == [e.id for e in atom.entries]
    assert all(item.content_html and item.date_published for item in feed.items)
