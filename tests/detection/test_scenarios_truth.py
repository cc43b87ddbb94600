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


@pytest.fixture
def demo_plain(db):
    return demo_layout(locations=["atlanta", "sacramento"], interval_s=INTERVAL, created_at=T0 - timedelta(minutes=1))


@pytest.mark.parametrize("seed, ratio", [(1, 0.5), (2, 0.0)])
def test_a_noisy_component_then_a_real_outage_is_one_incident_dated_by_the_outage(demo_plain, seed, ratio):
    """Flapping noise (ratio 0.5), or Following plainly failing with server errors in the two
    intervals just before the read-only outage (ratio 0): either way the incident starts with the outage."""
    import dataclasses

    from detection.scenarios import noise_slots

    scenario = dataclasses.replace(SCENARIOS["flapping-then-outage"], noise_ratio=ratio)
    slots = noise_slots(scenario, int(scenario.warmup_s // INTERVAL), seed)
    assert len(slots) >= (4 if ratio else 2)  # noisy indeed
    times = simulate_scenario(scenario, start=T0, interval_s=INTERVAL, seed=seed)
    # The noise did make Following fail before the outage…
    assert ComponentStatusChange.objects.filter(component__name="Following", changed_at__lt=times["fault_from"]) \
        .exclude(new_status__in=[ComponentStatus.OPERATIONAL, ComponentStatus.UNKNOWN]).exists()
    incident = Incident.objects.get()
    assert set(incident.components.values_list("name", flat=True)) == {
        "Posting", "Reposting", "Following", "Direct messages"}
    assert "read-only" in incident.title
    # … but the incident starts with the outage, not with Following's earlier server errors.
    assert times["fault_from"] <= incident.started_at <= times["fault_from"] + timedelta(seconds=INTERVAL)
    injected = (times["fault_until"] - times["fault_from"]).total_seconds()
    assert abs(incident.duration.total_seconds() - injected) <= INTERVAL
    starts = incident.evidence["component_starts"]
    assert set(starts) == {"Posting", "Reposting", "Following", "Direct messages"}
    assert all(datetime.fromisoformat(t) >= times["fault_from"] for t in starts.values())


def test_read_only_500_is_one_read_only_incident_on_the_writes_and_delivery(demo):
    scenario = SCENARIOS["read-only-500"]
    assert scenario.compat == "takahe"
    times = simulate_scenario(scenario, start=T0, interval_s=INTERVAL)
    incident = Incident.objects.get()
    assert set(incident.components.values_list("name", flat=True)) == {
        "Posting", "Reposting", "Following", "Direct messages", "Post delivery"}
    assert "platform read-only" in incident.title and set(incident.evidence["failure_classes"]) == {"read_only"}
    injected = (times["fault_until"] - times["fault_from"]).total_seconds()
    assert abs(incident.duration.total_seconds() - injected) <= INTERVAL


@pytest.mark.parametrize("name", ["takahe-follow", "delete-lost"])
def test_a_healthy_takahe_and_lost_deletes_open_no_incident(demo, name):
    """Lost deletes are on-call's (the own problem lost_deletes, see tests/probes/test_sweep.py):
    every probe still does what users do, so nothing public."""
    scenario = SCENARIOS[name]
    assert scenario.compat == "takahe" and scenario.expect_incidents == 0
    simulate_scenario(scenario, start=T0, interval_s=INTERVAL)
    assert not Incident.objects.exists()
    assert not ComponentStatusChange.objects.exclude(
        new_status__in=[ComponentStatus.OPERATIONAL, ComponentStatus.UNKNOWN]).exists()


@pytest.mark.django_db
def test_scenario_run_refuses_a_sandbox_in_another_compat_mode(sandbox, monkeypatch):
    """A Takahē scenario against a Mastodon-like sandbox would pass without testing anything."""
    from django.core.management import CommandError, call_command

    from tests.conftest import CONTROL_TOKEN

    monkeypatch.setenv("SANDBOX_CONTROL_TOKEN", CONTROL_TOKEN)
    with pytest.raises(CommandError, match=r"scenario read-only-500 is about a server in takahe mode; the sandbox "
                                           r"runs in mastodon mode\. Start it with `manage\.py up --compat takahe`"):
        call_command("scenario", "run", "read-only-500", "--sandbox-url", sandbox.url)
