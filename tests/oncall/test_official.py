"""The on-call dashboard shows, per platform, what it declares and its source's health, and per
incident its acknowledgement or how long it has gone unacknowledged."""
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
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("oncall", password="x", is_staff=True))
    return client


def text(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return " ".join(lxml.html.fromstring(response.content.decode()).text_content().split())


@pytest.mark.parametrize("path", ["/oncall/", "/oncall/fragments/incidents"])
def test_the_dashboard_shows_the_declared_state_and_the_time_unacknowledged(staff_client, db, path):
    with time_machine.travel(NOW, tick=False):
        platform = platform_make()
        source = source_make(platform, indicator=Indicator.UNREACHABLE, since=NOW - timedelta(minutes=3),
                             unacknowledged_after_s=600)
        source.last_error = "timed out after 10 s"
        source.last_ok_at = NOW - timedelta(minutes=4)
        source.save()
        incident = incident_make(platform, started_at=NOW - timedelta(minutes=47))
        ack_make(incident, source)
        page = text(staff_client, path)
    assert "Chirp declares Official source unreachable since 20 Nov 11:57:00" in page
    assert "last read 20 Nov 11:56:00 · last error: timed out after 10 s" in page
    assert "Not acknowledged by Chirp for 47 min (on-call is told after 10 min)." in page


def test_an_acknowledged_incident_shows_how_long_it_took(staff_client, db):
    with time_machine.travel(NOW, tick=False):
        platform = platform_make()
        source = source_make(platform, indicator=Indicator.MAJOR, since=NOW - timedelta(minutes=20))
        incident = incident_make(platform, started_at=NOW - timedelta(minutes=47))
        official = official_incident_make(source, seen_at=NOW - timedelta(minutes=20))
        ack_make(incident, source, official=official, at=NOW - timedelta(minutes=20))
        official_incident_make(source, name="Search slow", external_id="zzz", seen_at=NOW - timedelta(minutes=5))
        page = text(staff_client, "/oncall/")
    assert "Acknowledged by Chirp 27 min after the measured start (11:40:00) · official incident: Elevated error rates" in page
    assert "Declared by Chirp; not seen by Vigie's probes: Search slow" in page
