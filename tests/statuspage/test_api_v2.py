"""Every Statuspage v2 endpoint validates against schemas written from the reference, and the
feb-2023 scenario shows in them as one incident with its updates."""
from __future__ import annotations

from datetime import timedelta

import jsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from detection.models import Component, Incident
from detection.simulation import simulate_scenario
from tests.statuspage.conftest import FEB_2023, T0
from tests.statuspage.schemas import DOCUMENTS


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
    timeline = html.split('<ol class="timeline"', 1)[1].split("</ol>", 1)[0]
    # The component changes superseded within a minute are folded away (statuspage.views.timeline).
    assert timeline.count("<li>") == 3 < incident.updates.count()
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


def test_a_group_is_a_component_listing_its_members_with_the_worst_status(client, history):
    components = client.get("/api/v2/components.json").json()["components"]
    group = next(c for c in components if c["group"])
    members = [c for c in components if c["group_id"] == group["id"]]
    assert group["name"] == "Writes" and group["components"] == [m["id"] for m in members]
    assert [m["name"] for m in members] == ["Posting", "Reposting", "Following", "Direct messages"]
    assert components.index(group) < components.index(members[0])  # the group heads its members
    Component.objects.filter(name="Following").update(status="partial_outage")
    components = client.get("/api/v2/components.json").json()["components"]
    assert next(c for c in components if c["group"])["status"] == "partial_outage"
