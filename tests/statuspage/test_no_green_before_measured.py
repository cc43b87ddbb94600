"""Only measured states are shown (issue 16): before its first run a component is "not measured
yet" on the page, in the Statuspage JSON (left out, documented) and badges; a component whose
probes are all disabled is "not monitored"; time without measurement is not counted as up."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from detection.evaluation import components_derive
from detection.models import Component, ComponentStatus
from probes.models import Location, Platform, Probe, ProbeLocation
from detection.simulation import record_run
from detection.uptime import uptime_bars


@pytest.fixture
def fresh(db):
    """A just-configured page: one probe, one location, one component, no run yet."""
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url="http://127.0.0.1:9")
    location = Location.objects.create(name="atlanta")
    probe = Probe.objects.create(name="Post", slug="post", platform=platform, action="post", interval_s=30)
    ProbeLocation.objects.create(probe=probe, location=location)
    component = Component.objects.create(name="Posting")
    component.probes.add(probe)
    return component


def test_a_component_with_no_run_is_not_measured_yet_on_the_page_json_and_badge(client, fresh):
    assert Component.objects.get().status == ComponentStatus.UNKNOWN
    page = client.get("/").content.decode()
    assert "Not measured yet" in page
    assert "All Systems Operational" not in page and ">✓</span> Operational" not in page
    summary = client.get("/api/v2/summary.json").json()
    assert summary["status"] == {"indicator": "none", "description": "Not Measured Yet"}
    assert summary["components"] == []  # no Statuspage status would be true: left out until measured
    badge = client.get(f"/components/{fresh.public_id}/status.svg").content.decode()
    assert "no data" in badge and "operational" not in badge


def test_the_first_run_makes_it_measured(client, fresh):
    record_run(ProbeLocation.objects.select_related("probe", "location").get(), timezone.now() - timedelta(seconds=5))
    assert Component.objects.get().status == ComponentStatus.OPERATIONAL
    summary = client.get("/api/v2/summary.json").json()
    assert [c["status"] for c in summary["components"]] == ["operational"]
    assert summary["status"]["description"] == "All Systems Operational"


def test_a_component_whose_probes_are_all_disabled_is_not_monitored(client, fresh):
    record_run(ProbeLocation.objects.select_related("probe", "location").get(), timezone.now() - timedelta(seconds=5))
    Probe.objects.update(enabled=False)
    derived = components_derive([Component.objects.get()], timezone.now())[fresh.id]
    assert derived.status == ComponentStatus.UNKNOWN
    page = client.get("/").content.decode()
    assert "Not monitored" in page


def test_a_component_without_fresh_runs_is_no_data_not_operational(client, fresh):
    record_run(ProbeLocation.objects.select_related("probe", "location").get(),
               timezone.now() - timedelta(hours=2))
    summary = client.get("/api/v2/summary.json").json()
    assert summary["components"] == []
    assert "No data" in client.get("/").content.decode()


def test_time_without_measurement_is_not_counted_as_up(fresh):
    """Created 10 hours ago, first measured 2 hours ago with a 1-hour major outage since: uptime is
    over the 2 measured hours (50 %), not over 10 (90 %)."""
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    Component.objects.update(created_at=now - timedelta(hours=10))
    placement = ProbeLocation.objects.select_related("probe", "location").get()
    ProbeLocation.objects.update(created_at=now - timedelta(hours=10))
    placement.refresh_from_db()
    record_run(placement, now - timedelta(hours=2))
    for i in range(4):
        record_run(placement, now - timedelta(hours=1) + timedelta(seconds=30 * i), failure_class="server_error")
    component = Component.objects.get()
    bar = uptime_bars([component], now=now)[component.id]
    observed = sum(d.observed_s for d in bar.days)
    assert observed == pytest.approx(2 * 3600, abs=5)
    assert bar.uptime < 0.6


def test_the_french_page_says_not_measured_yet_in_french(client, fresh):
    assert "Pas encore mesuré" in client.get("/fr/").content.decode()
