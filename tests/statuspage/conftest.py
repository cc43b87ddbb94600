"""Fixtures of the public-site tests: the feb-2023 outage played through the real evaluation,
with the demo's writes grouped and maintenance windows in the past, now, later and called off."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from detection.evaluation import platform_refresh
from detection.models import Component, ComponentGroup, Incident, Maintenance
from detection.scenarios import SCENARIOS
from detection.simulation import demo_layout, simulate_scenario
from probes.models import Platform, ProbeLocation
from tests.snapshots import Snapshot

T0 = datetime(2023, 2, 8, 17, 0, tzinfo=dt_timezone.utc)
# The February 2023 outage, shortened to five minutes to keep the suite quick.
FEB_2023 = dataclasses.replace(SCENARIOS["feb-2023"], warmup_s=60, fault_s=300)


def _played():
    """The outage on its fixed clock: the same rows every time, so played once per test process."""
    demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(days=1))
    writes = ComponentGroup.objects.create(name="Writes", position=0)
    Component.objects.filter(name__in=["Posting", "Reposting", "Following", "Direct messages"]).update(group=writes)
    simulate_scenario(FEB_2023, start=T0, interval_s=30)


PLAYED = Snapshot(_played)


@pytest.fixture
def history(db):
    PLAYED.restore()
    platform = Platform.objects.get()
    now = timezone.now()
    past = Maintenance.objects.create(title="Database upgrade", scheduled_for=now - timedelta(days=2),
                                      scheduled_until=now - timedelta(days=2) + timedelta(hours=1))
    active = Maintenance.objects.create(title="Cache rebuild", body="Timelines may be slow.",
                                        scheduled_for=now - timedelta(minutes=5), scheduled_until=now + timedelta(hours=1))
    upcoming = Maintenance.objects.create(title="Network work", scheduled_for=now + timedelta(days=1),
                                          scheduled_until=now + timedelta(days=1, hours=2))
    Maintenance.objects.create(title="Called off", scheduled_for=now + timedelta(days=3),
                               scheduled_until=now + timedelta(days=3, hours=1), cancelled=True)
    for maintenance in (past, active, upcoming):
        maintenance.components.set(Component.objects.filter(name="Timeline"))
    # Fresh runs just now (only a measured component shows a status), without moving the states.
    ProbeLocation.objects.update(last_run_at=now - timedelta(seconds=20))
    platform_refresh(platform, now)  # as the admin does on save (and the watchdog every 10 s)
    return {"past": past, "active": active, "upcoming": upcoming, "incident": Incident.objects.get()}
