"""Vigie reads the sandbox's official page over real HTTP: what it declares becomes rows, once."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from detection.models import Component
from official import fetch
from official.models import ChangeKind, OfficialComponent, OfficialIncident, OfficialStateChange
from official.state import official_source_read

pytestmark = pytest.mark.django_db


def kinds(source) -> list[tuple[str, str, str]]:
    return list(OfficialStateChange.objects.filter(source=source).order_by("id").values_list("kind", "old", "new"))


def test_a_quiet_page_is_read_as_none_with_its_components_mapped_by_name(source):
    posting = Component.objects.create(name="posting")  # names match whatever their case
    assert official_source_read(source_id=source.id) == "none"
    source.refresh_from_db()
    assert (source.indicator, source.description, source.last_error) == ("none", "All Systems Operational", "")
    assert OfficialComponent.objects.get(source=source, name="Posting").component == posting
    assert OfficialComponent.objects.filter(source=source).count() == 5
    assert kinds(source)[0] == ("indicator", "unknown", "none")


def test_reading_the_same_page_twice_changes_nothing(source):
    official_source_read(source_id=source.id)
    before = kinds(source)
    official_source_read(source_id=source.id, now=timezone.now() + timedelta(seconds=60))
    assert kinds(source) == before


def test_a_steady_page_read_again_does_not_render_the_public_site_again(source, django_capture_on_commit_callbacks):
    official_source_read(source_id=source.id)
    with django_capture_on_commit_callbacks() as callbacks:
        official_source_read(source_id=source.id, now=timezone.now() + timedelta(seconds=60))
    assert callbacks == []  # no public_change(): the version (and the rendered pages) stay
    source.refresh_from_db()
    assert source.last_ok_at > source.indicator_since  # the read itself was recorded


def test_an_acknowledged_fault_opens_an_official_incident_then_resolves_it(source, sandbox, official):
    Component.objects.create(name="Posting")
    component_map = {"Direct messages": "DMs"}
    source.component_map = component_map
    source.save()
    dms = Component.objects.create(name="DMs")
    official_source_read(source_id=source.id)
    sandbox.fault("read_only", "dm")
    official.set(ack_after_s=0)
    official_source_read(source_id=source.id)
    incident = OfficialIncident.objects.get(source=source)
    assert incident.status == "investigating" and incident.resolved_seen_at is None
    assert list(incident.components.all()) == [dms]  # the config's mapping
    assert incident.url.startswith(sandbox.url + "/incidents/")
    assert incident.declared_started_at <= incident.first_seen_at
    assert ("indicator", "none", "major") in kinds(source)
    assert ("incident_opened", "", "investigating") in kinds(source)
    assert ("component", "operational", "partial_outage") in kinds(source)

    sandbox.clear_faults()
    official_source_read(source_id=source.id)
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_seen_at is not None
    # Gone from unresolved.json: resolved, when is not said (incidents.json is not read).
    assert incident.declared_resolved_at is None
    assert kinds(source)[-3:] == [("indicator", "major", "none"), ("component", "partial_outage", "operational"),
                                  ("incident_resolved", "investigating", "resolved")]


def test_an_unreachable_page_is_recorded_once_and_never_as_operational(source, official):
    official_source_read(source_id=source.id)
    official.set(answer="error")
    for _ in range(3):
        assert official_source_read(source_id=source.id) == "unreachable"
    source.refresh_from_db()
    assert source.indicator == "unreachable"
    assert source.last_error == "GET /api/v2/status.json answered HTTP 503"
    assert kinds(source).count(("indicator", "none", "unreachable")) == 1
    official.set(answer="ok")
    assert official_source_read(source_id=source.id) == "none"
    assert kinds(source)[-1] == ("indicator", "unreachable", "none")
    assert OfficialStateChange.objects.filter(kind=ChangeKind.INDICATOR, new="unreachable").get().text == \
        "GET /api/v2/status.json answered HTTP 503"


@pytest.mark.parametrize("answer, reason", [
    ("html", "GET /api/v2/status.json answered an HTML page, not JSON"),
    ("garbage", "status.json's indicator is a list, not one of none, minor, major, critical, maintenance"),
])
def test_hostile_answers_make_the_source_unreachable_with_a_reason(source, official, answer, reason):
    official.set(answer=answer)
    assert official_source_read(source_id=source.id) == "unreachable"
    source.refresh_from_db()
    assert source.last_error == reason


def test_a_page_slower_than_the_deadline_is_unreachable(source, official, monkeypatch):
    monkeypatch.setattr(fetch, "READ_DEADLINE_S", 0.3)
    official.set(answer="slow:1500")
    assert official_source_read(source_id=source.id) == "unreachable"
    source.refresh_from_db()
    assert "timed out" in source.last_error


def test_the_ssrf_guard_applies_to_official_sources(source, settings):
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = []
    assert official_source_read(source_id=source.id) == "unreachable"
    source.refresh_from_db()
    assert "SSRF guard" in source.last_error


def test_the_atom_feed_is_read_as_incidents(feed_source, official):
    official.declare("Logins fail", ["Timeline"])
    assert official_source_read(source_id=feed_source.id) == "minor"
    incident = OfficialIncident.objects.get(source=feed_source)
    assert (incident.name, incident.status) == ("Logins fail", "investigating")
    assert "UTC Investigating - We are investigating reports of problems." in incident.last_update_text
    official.resolve()
    assert official_source_read(source_id=feed_source.id) == "none"
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_seen_at is not None
