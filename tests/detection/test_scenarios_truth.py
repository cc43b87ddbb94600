"""Scenarios of issue 16, simulated through the real evaluation: fan-out stalled, and a noisy
component before a real outage."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from detection.models import ComponentStatus, ComponentStatusChange, Incident, IncidentStatus
from detection.scenarios import SCENARIOS
from detection.simulation import demo_layout, simulate_scenario

T0 = datetime(2026, 2, 8, 17, 0, tzinfo=dt_timezone.utc)
INTERVAL = 30


@pytest.fixture
def demo(db):
    return demo_layout(locations=["atlanta", "sacramento"], interval_s=INTERVAL, created_at=T0 - timedelta(minutes=1),
                       delivery=True)


def test_fanout_stalled_is_one_incident_on_delivery_in_the_words_users_feel(demo):
    times = simulate_scenario(SCENARIOS["fanout-stalled"], start=T0, interval_s=INTERVAL)
    incident = Incident.objects.get()
    assert list(incident.components.values_list("name", flat=True)) == ["Post delivery"]
    assert incident.title == "New posts not reaching followers"
    assert incident.evidence["failure_classes"] == {"not_delivered": 2}
    assert incident.status == IncidentStatus.RESOLVED
    injected = (times["fault_until"] - times["fault_from"]).total_seconds()
    assert abs(incident.duration.total_seconds() - injected) <= INTERVAL
    assert incident.started_at >= times["fault_from"]
    # Posting itself kept working: accepted is not delivered.
    assert not ComponentStatusChange.objects.filter(component__name="Posting").exclude(
        new_status=ComponentStatus.OPERATIONAL).exists()
