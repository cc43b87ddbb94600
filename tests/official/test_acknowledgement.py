"""Each Vigie incident's acknowledgement: the platform's first official sign that overlaps it in
time (and in components, when the official incident names mapped ones)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from detection.events import incident_updated
from detection.models import Component, Incident, IncidentComponent, IncidentUpdate
from official.acknowledgement import GRACE, acknowledgement_refresh, acknowledgements_refresh, official_incidents_unseen
from official.models import IncidentAcknowledgement, OfficialSource
from official.parse import Declared, DeclaredIncident
from official.state import official_declared_record, official_unreachable_record
from probes.models import Platform

pytestmark = pytest.mark.django_db
T0 = datetime(2023, 2, 8, 17, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


@pytest.fixture
def source():
    platform = Platform.objects.create(name="Social", slug="social", kind="mastodon", base_url="https://social.example")
    return OfficialSource.objects.create(platform=platform, kind="statuspage", url="https://status.social.example")


@pytest.fixture
def posting():
    return Component.objects.create(name="Posting")


def vigie_incident(source, started, resolved=None, components=()):
    incident = Incident.objects.create(title="Writes failing", platform=source.platform, started_at=started,
                                       detected_at=started + MIN, resolved_at=resolved,
                                       status="resolved" if resolved else "investigating")
    for component in components:
        IncidentComponent.objects.create(incident=incident, component=component, worst_status="major_outage",
                                         last_status="major_outage")
    return incident


def read(source, at, *incidents, indicator=None):
    """A reading of the official page at `at` declaring `incidents` (open unless their status says)."""
    if indicator is None:
        indicator = "major" if any(not i.resolved for i in incidents) else "none"
    official_declared_record(source_id=source.id, declared=Declared(indicator=indicator, incidents=list(incidents)),
                             now=at)


def official(external_id="inc1", started=None, components=(), status="investigating", resolved=None):
    return DeclaredIncident(external_id=external_id, name="Problems posting", status=status, impact="major",
                            components=list(components), started_at=started, resolved_at=resolved,
                            url="https://status.social.example/incidents/inc1")


def ack(incident, now):
    return acknowledgement_refresh(incident_id=incident.id, now=now)


def test_an_incident_the_platform_never_acknowledged_says_so(source, posting):
    incident = vigie_incident(source, T0, components=[posting])
    read(source, T0 + 30 * MIN)
    row = ack(incident, T0 + 31 * MIN)
    assert row.acknowledged_at is None and row.official_incident is None and row.time_to_acknowledge_s is None


def test_an_official_incident_acknowledges_at_its_declared_start_and_links_it(source, posting):
    incident = vigie_incident(source, T0, components=[posting])
    read(source, T0 + 2 * MIN)
    read(source, T0 + 47 * MIN, official(started=T0 + 45 * MIN, components=["Posting"]))
    row = ack(incident, T0 + 47 * MIN)
    assert row.official_incident.external_id == "inc1"
    assert (row.acknowledged_at, row.seen_at) == (T0 + 45 * MIN, T0 + 47 * MIN)
    assert row.time_to_acknowledge_s == 45 * 60
    assert row.official_resolved_at is None

    read(source, T0 + 80 * MIN, official(started=T0 + 45 * MIN, status="resolved", resolved=T0 + 78 * MIN,
                                         components=["Posting"]))
    row = ack(incident, T0 + 80 * MIN)
    assert row.official_resolved_at == T0 + 78 * MIN


def test_a_declared_time_is_never_trusted_later_than_it_was_seen_nor_earlier_than_the_grace(source):
    incident = vigie_incident(source, T0)
    # The page says it started two hours before the probes saw anything: counted from the grace.
    read(source, T0 + 5 * MIN, official(started=T0 - 120 * MIN))
    assert ack(incident, T0 + 5 * MIN).acknowledged_at == T0 - GRACE


def test_an_acknowledgement_shortly_before_the_measured_start_counts(source):
    read(source, T0 - 3 * MIN, official(started=T0 - 4 * MIN))
    incident = vigie_incident(source, T0)
    row = ack(incident, T0 + MIN)
    assert row.acknowledged_at == T0 - 4 * MIN and row.time_to_acknowledge_s == -240


def test_an_official_incident_ended_before_the_grace_does_not_count(source):
    read(source, T0 - 60 * MIN, official(started=T0 - 60 * MIN))
    read(source, T0 - 30 * MIN, official(started=T0 - 60 * MIN, status="resolved", resolved=T0 - 30 * MIN))
    incident = vigie_incident(source, T0)
    assert ack(incident, T0 + MIN).acknowledged_at is None


def test_an_official_incident_about_other_components_does_not_acknowledge(source, posting):
    timeline = Component.objects.create(name="Timeline")
    incident = vigie_incident(source, T0, components=[posting])
    read(source, T0 + 5 * MIN, official(started=T0 + 5 * MIN, components=["Timeline"]))
    assert ack(incident, T0 + 6 * MIN).acknowledged_at is None
    assert timeline.official_incidents.count() == 1


def test_an_official_incident_naming_no_known_component_is_matched_by_time(source, posting):
    incident = vigie_incident(source, T0, components=[posting])
    read(source, T0 + 5 * MIN, official(started=T0 + 5 * MIN, components=["Billing"]))
    assert ack(incident, T0 + 6 * MIN).acknowledged_at == T0 + 5 * MIN


def test_a_declared_indicator_acknowledges_when_no_incident_is_declared(source):
    incident = vigie_incident(source, T0)
    read(source, T0 + MIN)
    read(source, T0 + 9 * MIN, indicator="minor")
    row = ack(incident, T0 + 9 * MIN)
    assert (row.acknowledged_at, row.official_incident, row.official_change.new) == (T0 + 9 * MIN, None, "minor")
    read(source, T0 + 30 * MIN)
    assert ack(incident, T0 + 30 * MIN).official_resolved_at == T0 + 30 * MIN


def test_an_unreachable_page_is_not_an_acknowledgement(source):
    incident = vigie_incident(source, T0)
    read(source, T0 + MIN)
    official_unreachable_record(source_id=source.id, reason="GET /api/v2/status.json answered HTTP 503",
                                now=T0 + 2 * MIN)
    assert ack(incident, T0 + 3 * MIN).acknowledged_at is None


def test_with_two_incidents_each_gets_its_own_acknowledgement(source):
    first = vigie_incident(source, T0, resolved=T0 + 20 * MIN)
    second = vigie_incident(source, T0 + 120 * MIN)
    read(source, T0 + 123 * MIN, official(started=T0 + 122 * MIN))
    acknowledgements_refresh(source_id=source.id, now=T0 + 123 * MIN)
    assert IncidentAcknowledgement.objects.get(incident=first).acknowledged_at is None
    assert IncidentAcknowledgement.objects.get(incident=second).acknowledged_at == T0 + 122 * MIN


def test_refreshing_twice_changes_nothing(source):
    incident = vigie_incident(source, T0)
    read(source, T0 + 5 * MIN, official(started=T0 + 5 * MIN))
    first = ack(incident, T0 + 5 * MIN)
    again = ack(incident, T0 + 9 * MIN)
    assert again.updated_at == first.updated_at == T0 + 5 * MIN


def test_official_incidents_vigie_did_not_see_are_listed(source):
    read(source, T0, official("seen", started=T0))
    read(source, T0 + 300 * MIN, official("seen", started=T0), official("unseen", started=T0 + 300 * MIN))
    vigie_incident(source, T0 + MIN, resolved=T0 + 30 * MIN)
    assert [i.external_id for i in official_incidents_unseen(source, T0 - 60 * MIN)] == ["unseen"]


def test_an_incident_that_opens_gets_its_acknowledgement_row(source):
    incident = vigie_incident(source, T0)
    update = IncidentUpdate.objects.create(incident=incident, status="investigating", body="Writes failing")
    incident_updated.send(sender=None, update_id=update.id)
    assert IncidentAcknowledgement.objects.get(incident=incident).source == source
