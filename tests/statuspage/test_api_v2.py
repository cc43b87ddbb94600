"""Every Statuspage v2 endpoint validates against schemas written from the reference, and the
feb-2023 scenario shows in them as one incident with its updates."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone as dt_timezone

import jsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from probes.evaluation import platform_refresh
from probes.models import Component, Incident, Maintenance
from probes.scenarios import SCENARIOS
from probes.simulation import demo_layout, simulate_scenario
from tests.statuspage.schemas import DOCUMENTS

T0 = datetime(2023, 2, 8, 17, 0, tzinfo=dt_timezone.utc)


# The February 2023 outage, shortened to five minutes to keep the suite quick.
FEB_2023 = dataclasses.replace(SCENARIOS["feb-2023"], warmup_s=60, fault_s=300)


@pytest.fixture
def history(db):
    platform = demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(days=1))
    simulate_scenario(FEB_2023, start=T0, interval_s=30)
    now = timezone.now()
    past = Maintenance.objects.create(title="Database upgrade", scheduled_for=now - timedelta(days=2),
                                      scheduled_until=now - timedelta(days=2) + timedelta(hours=1))
    active = Maintenance.objects.create(title="Cache rebuild", body="Timelines may be slow.",
                                        scheduled_for=now - timedelta(minutes=5), scheduled_until=now + timedelta(hours=1))
    upcoming = Maintenance.objects.create(title="Network work", scheduled_for=now + timedelta(days=1),
                                          scheduled_until=now + timedelta(days=1, hours=2))
    for maintenance in (past, active, upcoming):
        maintenance.components.set(Component.objects.filter(name="Timeline"))
    platform_refresh(platform, now)  # as the admin does on save (and the watchdog every 10 s)
    return {"past": past, "active": active, "upcoming": upcoming}


@pytest.mark.parametrize("path", sorted(DOCUMENTS))
def test_each_endpoint_validates_against_the_reference_schema(client, history, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    jsonschema.validate(response.json(), DOCUMENTS[path], format_checker=jsonschema.FormatChecker())


def test_the_feb_2023_outage_is_one_incident_with_its_updates_newest_first(client, history):
    incidents = client.get("/api/v2/incidents.json").json()["incidents"]
    assert len(incidents) == 1
    (incident,) = incidents
    assert incident["name"].startswith("Posting, reposting, following and direct messages failing")
    assert incident["impact"] == "critical" and incident["status"] == "resolved"
    assert sorted(c["name"] for c in incident["components"]) == ["Direct messages", "Following", "Posting",
                                                                 "Reposting"]
    updates = incident["incident_updates"]
    assert updates[0]["status"] == "resolved" and updates[-1]["status"] == "investigating"
    assert [u["created_at"] for u in updates] == sorted((u["created_at"] for u in updates), reverse=True)
    assert incident["started_at"].startswith("2023-02-08T17:01:")
    assert client.get("/api/v2/incidents/unresolved.json").json()["incidents"] == []
    assert client.get("/api/v2/summary.json").json()["incidents"] == []  # resolved: not in the summary


def test_an_open_incident_is_in_the_summary_and_unresolved(client, history):
    Incident.objects.update(resolved_at=None, status="identified")
    summary = client.get("/api/v2/summary.json").json()
    assert [i["status"] for i in summary["incidents"]] == ["identified"]
    assert len(client.get("/api/v2/incidents/unresolved.json").json()["incidents"]) == 1


def test_maintenances_are_split_into_upcoming_and_active(client, history):
    def names(path):
        return [m["name"] for m in client.get(path).json()["scheduled_maintenances"]]

    assert names("/api/v2/scheduled-maintenances/upcoming.json") == ["Network work"]
    assert names("/api/v2/scheduled-maintenances/active.json") == ["Cache rebuild"]
    assert set(names("/api/v2/scheduled-maintenances.json")) == {"Network work", "Cache rebuild", "Database upgrade"}
    summary = client.get("/api/v2/summary.json").json()["scheduled_maintenances"]
    assert [(m["name"], m["status"]) for m in summary] == [("Cache rebuild", "in_progress"),
                                                           ("Network work", "scheduled")]
    active = summary[0]
    assert [u["status"] for u in active["incident_updates"]] == ["in_progress", "scheduled"]
    assert active["impact"] == "maintenance" and active["components"][0]["status"] == "under_maintenance"


def test_the_incident_page_shows_times_duration_and_timeline(client, history):
    incident = Incident.objects.get()
    html = client.get(f"/incidents/{incident.public_id}").content.decode()
    assert incident.title in html and "first failing run" in html
    assert "5 min" in html and "± 30 s" in html
    assert html.count("<li>") == incident.updates.count()
    assert client.get("/incidents/nosuchid0000").status_code == 404


def test_query_counts_do_not_grow_with_history(client, history):
    def count(path):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    before = {path: count(path) for path in ("/", "/api/v2/summary.json", "/api/v2/incidents.json")}
    # Another day of history: thousands more runs, another incident.
    simulate_scenario(FEB_2023, start=T0 + timedelta(days=1), interval_s=30)
    assert Incident.objects.count() == 2
    after = {path: count(path) for path in before}
    assert after == before
