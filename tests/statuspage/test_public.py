"""The first public page and components.json in the Statuspage v2 shape."""
from __future__ import annotations

import re

import pytest
from django.utils import timezone

from detection.evaluation import component_set_status
from detection.models import Component, ComponentStatus
from probes.models import Location, Platform, Probe, ProbeLocation

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def components(db):
    # Measured (operational since created, a probe run just now): a component with no data is
    # left out of the Statuspage JSON.
    posting = Component.objects.create(name="Posting", position=0, status=ComponentStatus.OPERATIONAL)
    dms = Component.objects.create(name="Direct messages", position=1, description="Sending DMs",
                                   status=ComponentStatus.OPERATIONAL)
    platform = Platform.objects.create(name="P", slug="p", kind="sandbox", base_url="http://127.0.0.1:9")
    probe = Probe.objects.create(name="post", slug="post", platform=platform, action="post")
    ProbeLocation.objects.create(probe=probe, location=Location.objects.create(name="atlanta"),
                                 last_run_at=timezone.now())
    posting.probes.add(probe)
    dms.probes.add(probe)
    component_set_status(component=dms, status=ComponentStatus.MAJOR, reason="test")
    return posting, dms


def test_components_json_has_the_statuspage_shape(client, components):
    response = client.get("/api/v2/components.json")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    document = response.json()
    assert set(document) == {"page", "components"}
    assert set(document["page"]) == {"id", "name", "url", "time_zone", "updated_at"}
    assert re.fullmatch(r"[a-z0-9]{12}", document["page"]["id"])
    first, second = document["components"]
    assert [first["name"], second["name"]] == ["Posting", "Direct messages"]
    assert first["status"] == "operational" and second["status"] == "major_outage"
    assert set(first) == {"id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
                          "start_date", "group_id", "page_id", "group", "only_show_if_degraded"}
    assert re.fullmatch(r"[a-z0-9]{12}", first["id"]) and first["id"] != second["id"]
    assert first["description"] is None and second["description"] == "Sending DMs"
    assert STAMP.match(first["created_at"]) and STAMP.match(document["page"]["updated_at"])
    assert first["page_id"] == document["page"]["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", first["start_date"])


def test_ids_are_stable_between_requests(client, components):
    ids = [c["id"] for c in client.get("/api/v2/components.json").json()["components"]]
    assert ids == [c["id"] for c in client.get("/api/v2/components.json").json()["components"]]


def test_the_page_lists_each_component_with_its_status_in_words(client, components):
    html = client.get("/").content.decode()
    assert "Posting" in html and "Direct messages" in html
    assert "Major outage" in html  # status in words, not colour alone
    assert "Major Service Outage" in html  # the banner reflects the worst component
    assert "Last checked" in html


def test_every_status_change_is_a_row(components):
    _, dms = components
    change = dms.status_changes.get()
    assert (change.old_status, change.new_status) == ("operational", "major_outage")
    assert change.changed_at <= timezone.now()
    assert component_set_status(component=dms, status=ComponentStatus.MAJOR, reason="again") is None


def test_the_page_says_when_monitoring_is_delayed(client, components):
    Component.objects.filter(name="Posting").update(stale=True)
    html = client.get("/").content.decode()
    assert "Monitoring is delayed" in html and "Monitoring delayed." in html


def test_the_page_shows_an_active_incident_with_its_latest_update(client, components):
    from detection.incidents import incident_add_update
    from detection.models import Incident

    incident = Incident.objects.create(title="Direct messages failing", started_at=timezone.now(),
                                       detected_at=timezone.now(), automatic=True)
    incident_add_update(incident=incident, status="investigating", body="First look.", automatic=True)
    incident_add_update(incident=incident, status="identified", body="Found it.", automatic=False)
    html = client.get("/").content.decode()
    assert "Direct messages failing" in html and "Found it." in html and "First look." not in html
