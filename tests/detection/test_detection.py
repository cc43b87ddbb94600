"""Detection: from runs to placement states, component status and one incident with exact times."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from detection.evaluation import watchdog
from detection.models import (
    Component, ComponentStatus, ComponentStatusChange, Impact, Incident, IncidentStatus, Maintenance, OwnProblem,
)
from probes.models import Location, PlacementState, Platform, Probe, ProbeLocation
from detection.scenarios import SCENARIOS
from detection.simulation import record_run, simulate_scenario

T0 = datetime(2026, 2, 8, 17, 0, tzinfo=dt_timezone.utc)
INTERVAL = 30


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def demo(db):
    """The demo's shape: five probes and a limits probe, two locations, one component each."""
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url="http://127.0.0.1:9")
    locations = [Location.objects.create(name="atlanta"), Location.objects.create(name="sacramento")]
    names = {"post": "Posting", "repost": "Reposting", "follow": "Following", "dm": "Direct messages",
             "read": "Timeline", "limits": "Post length limit"}
    for position, (action, name) in enumerate(names.items()):
        probe = Probe.objects.create(name=name, slug=f"sandbox-{action}", platform=platform, action=action,
                                     interval_s=INTERVAL, timeout_s=10, latency_threshold_ms=2000)
        for location in locations:
            ProbeLocation.objects.create(probe=probe, location=location, created_at=T0 - timedelta(minutes=1))
        Component.objects.create(name=name, position=position).probes.add(probe)
    return platform


def placement(action: str, location: str) -> ProbeLocation:
    return ProbeLocation.objects.select_related("probe", "location").get(probe__action=action,
                                                                          location__name=location)


def status(name: str) -> str:
    return Component.objects.get(name=name).status


# --- one placement ------------------------------------------------------------------------------

def test_a_placement_fails_after_two_failures_and_recovers_after_two_successes(demo):
    p = placement("post", "atlanta")
    record_run(p, at(0))
    assert ProbeLocation.objects.get(id=p.id).state == PlacementState.UP
    record_run(p, at(30), failure_class="server_error")
    assert ProbeLocation.objects.get(id=p.id).state == PlacementState.UP  # one failure is not enough
    record_run(p, at(60), failure_class="server_error")
    p = ProbeLocation.objects.get(id=p.id)
    assert p.state == PlacementState.FAILING
    assert p.streak_started_at == at(30) and p.detected_at == at(60) + timedelta(milliseconds=40)
    record_run(p, at(90))
    assert ProbeLocation.objects.get(id=p.id).state == PlacementState.FAILING
    record_run(p, at(120))
    assert ProbeLocation.objects.get(id=p.id).state == PlacementState.UP
    changes = list(p.state_changes.order_by("changed_at").values_list("old_state", "new_state", "changed_at"))
    assert changes == [("unknown", "up", at(0)), ("up", "failing", at(60)), ("failing", "up", at(120))]


def test_slow_successes_make_a_placement_degraded_and_fast_ones_bring_it_back(demo):
    p = placement("post", "atlanta")
    for i in range(3):
        record_run(p, at(30 * i), latency_ms=6000)
    assert ProbeLocation.objects.get(id=p.id).state == PlacementState.DEGRADED
    assert status("Posting") == ComponentStatus.DEGRADED
    record_run(p, at(90))
    record_run(p, at(120))
    assert ProbeLocation.objects.get(id=p.id).state == PlacementState.UP


def test_a_late_run_is_kept_but_does_not_move_the_state_backwards(demo):
    p = placement("post", "atlanta")
    record_run(p, at(60), failure_class="server_error")
    record_run(p, at(90), failure_class="server_error")
    late = record_run(p, at(30))  # finished after the others
    assert late.outcome == "success"
    assert ProbeLocation.objects.get(id=p.id).state == PlacementState.FAILING


# --- scenarios, simulated -------------------------------------------------------------------------

def test_feb_2023_is_one_critical_incident_over_the_four_writes_with_exact_times(demo):
    times = simulate_scenario(SCENARIOS["feb-2023"], start=T0, interval_s=INTERVAL)
    incident = Incident.objects.get()
    assert set(incident.components.values_list("name", flat=True)) == {
        "Posting", "Reposting", "Following", "Direct messages"}
    assert incident.title == ("Posting, reposting, following and direct messages failing — platform read-only: "
                              "writes refused with a daily-limit error")
    assert incident.effective_impact == Impact.CRITICAL
    assert incident.status == IncidentStatus.RESOLVED
    mttd = incident.time_to_detect.total_seconds()
    assert 0 < mttd <= INTERVAL * 2 + 5
    injected = (times["fault_until"] - times["fault_from"]).total_seconds()
    assert abs(incident.duration.total_seconds() - injected) <= INTERVAL
    assert incident.started_at >= times["fault_from"]
    assert 0 < incident.started_uncertainty_s <= INTERVAL and 0 < incident.resolved_uncertainty_s <= INTERVAL
    assert status("Timeline") == ComponentStatus.OPERATIONAL
    assert not ComponentStatusChange.objects.filter(component__name="Timeline").exclude(
        new_status=ComponentStatus.OPERATIONAL).exists()
    statuses = list(incident.updates.order_by("created_at", "id").values_list("status", flat=True))
    assert statuses[0] == IncidentStatus.INVESTIGATING and statuses[-1] == IncidentStatus.RESOLVED
    assert IncidentStatus.MONITORING in statuses
    opening = incident.updates.order_by("created_at", "id").first()
    assert "daily-limit" in opening.body and "HTTP 429" in opening.body  # the class in words


def test_regional_is_a_partial_outage_not_major_and_says_where(demo):
    Location.objects.create(name="chicago")
    for probe in Probe.objects.all():
        ProbeLocation.objects.create(probe=probe, location=Location.objects.get(name="chicago"),
                                     created_at=T0 - timedelta(minutes=1))
    simulate_scenario(SCENARIOS["regional"], start=T0, interval_s=INTERVAL)
    changes = set(ComponentStatusChange.objects.values_list("new_status", flat=True))
    assert ComponentStatus.PARTIAL in changes and ComponentStatus.MAJOR not in changes
    incident = Incident.objects.get()
    assert incident.effective_impact == Impact.MAJOR
    assert "from Sacramento" in incident.title and "cannot be reached" in incident.title


def test_flapping_opens_no_incident(demo):
    simulate_scenario(SCENARIOS["flapping"], start=T0, interval_s=INTERVAL, seed=4)
    assert not Incident.objects.exists()
    # … and it is not hidden either: Posting showed intermittent trouble.
    assert ComponentStatusChange.objects.filter(component__name="Posting").exists()


def test_slow_posting_is_degraded_performance_without_an_incident(demo):
    simulate_scenario(SCENARIOS["slow-posting"], start=T0, interval_s=INTERVAL)
    assert list(ComponentStatusChange.objects.filter(component__name="Posting").values_list("new_status", flat=True)) \
        == [ComponentStatus.OPERATIONAL, ComponentStatus.DEGRADED, ComponentStatus.OPERATIONAL]  # first measured
    assert not Incident.objects.exists()


def test_slow_posting_opens_an_incident_when_the_component_asks_for_it(demo):
    Component.objects.filter(name="Posting").update(incident_on_degraded=True)
    simulate_scenario(SCENARIOS["slow-posting"], start=T0, interval_s=INTERVAL)
    incident = Incident.objects.get()
    assert incident.effective_impact == Impact.MINOR and "degraded" in incident.title


def test_an_overlong_post_accepted_is_character_limit_not_enforced(demo):
    simulate_scenario(SCENARIOS["overlong-accepted"], start=T0, interval_s=INTERVAL)
    incident = Incident.objects.get()
    assert incident.title == "Character limit not enforced"
    assert list(incident.components.values_list("name", flat=True)) == ["Post length limit"]


# --- maintenance, stale data, budget ------------------------------------------------------------------

def test_a_maintenance_window_shows_under_maintenance_and_holds_incidents_back(demo):
    window = Maintenance.objects.create(title="Upgrade", scheduled_for=at(100), scheduled_until=at(2000))
    window.components.set(Component.objects.filter(name__in=["Posting", "Reposting", "Following",
                                                             "Direct messages"]))
    times = simulate_scenario(SCENARIOS["feb-2023"], start=T0, interval_s=INTERVAL)
    assert not Incident.objects.exists()
    assert ComponentStatusChange.objects.filter(component__name="Posting",
                                                new_status=ComponentStatus.MAINTENANCE).exists()
    from probes.models import Run
    assert Run.objects.filter(probe__action="post", outcome="failure",
                              started_at__gte=times["fault_from"]).count() > 10  # runs still recorded


def test_a_silent_location_makes_its_probes_unknown_and_tells_on_call_without_an_incident(demo):
    for action in ("post", "read"):
        for location in ("atlanta", "sacramento"):
            record_run(placement(action, location), at(0), failure_class="server_error" if action == "post" else "")
            record_run(placement(action, location), at(30), failure_class="server_error" if action == "post" else "")
    # sacramento keeps running, atlanta goes silent
    for i in range(2, 8):
        record_run(placement("read", "sacramento"), at(30 * i))
        record_run(placement("post", "sacramento"), at(30 * i))
    incidents_before = list(Incident.objects.values_list("id", flat=True))
    result = watchdog(now=at(30 * 8))
    assert "atlanta" in result["stale_locations"]
    assert placement("post", "atlanta").state == PlacementState.UNKNOWN
    assert Component.objects.get(name="Timeline").stale
    problem = OwnProblem.objects.get(kind=OwnProblem.Kind.STALE_LOCATION)
    assert problem.subject == "atlanta" and problem.resolved_at is None
    # The silence itself opened no incident (the one open is sacramento's evidence of failing posts).
    assert list(Incident.objects.values_list("id", flat=True)) == incidents_before
    record_run(placement("read", "atlanta"), at(30 * 9))
    watchdog(now=at(30 * 9 + 1))
    assert OwnProblem.objects.get(id=problem.id).resolved_at is not None


def test_a_quota_refusal_explained_by_vigies_own_writes_is_a_budget_problem_not_an_incident(demo):
    from probes.models import Account, Artifact

    platform = Platform.objects.get()
    Platform.objects.filter(id=platform.id).update(kind="mastodon")
    prober = Account.objects.create(platform=platform, role="prober", username="vigie", token="t")
    for i in range(29):  # 29 deletes in the last 30 min: Mastodon allows 30
        Artifact.objects.create(run_key="00000000-0000-0000-0000-%012d" % i, probe=Probe.objects.first(),
                                account=prober, kind="status", remote_id=str(i), created_at=at(-600),
                                cleaned_at=at(-300))
    for i in range(4):
        run = record_run(placement("post", "atlanta"), at(30 * i), failure_class="rate_limited", status_code=429)
    assert run.evidence["self_inflicted"] is True
    assert placement("post", "atlanta").state != PlacementState.FAILING
    assert not Incident.objects.exists()
    assert OwnProblem.objects.get(kind=OwnProblem.Kind.PROBE_BUDGET).resolved_at is None


def test_a_quota_refusal_with_vigie_far_below_the_limit_is_a_platform_incident(demo):
    Platform.objects.update(kind="mastodon")
    for i in range(4):
        for location in ("atlanta", "sacramento"):
            record_run(placement("post", location), at(30 * i), failure_class="quota_exceeded", status_code=429)
    assert Incident.objects.get().effective_impact == Impact.CRITICAL
    assert not OwnProblem.objects.exists()


def test_the_partners_standing_follow_counts_in_the_write_budget_planned_and_used(demo):
    """The delivery probe's partner follows the prober once and keeps it: one follow per period in
    the planned schedule (however many runs), and each follow it made in the usage."""
    from detection.budget import own_usage, platform_limits, schedule_problems
    from probes.models import Account, Run

    delivery = [{"slug": "d", "action": "delivery", "interval": 60, "locations": ["a", "b"]}]
    # A platform that allows one follow a day: the standing follow alone uses it up.
    assert any("partner account would make 1 writes per 24 h counted as follows" in p
               for p in schedule_problems("mastodon", delivery, write_limits={"follows": [1, 86400]}))
    # Planned once, not per run: a limit of 10 a day leaves room for it, at any interval.
    assert schedule_problems("mastodon", delivery, write_limits={"follows": [10, 86400]}) == []

    platform = Platform.objects.get()
    Platform.objects.filter(id=platform.id).update(kind="mastodon")
    partner = Account.objects.create(platform=platform, role="partner", username="partner", token="t")
    probe = Probe.objects.create(name="Delivery", slug="sandbox-delivery", platform=platform, action="delivery",
                                 interval_s=INTERVAL, timeout_s=10)
    location = Location.objects.first()
    for i, made in enumerate([True, False, True]):
        Run.objects.create(probe=probe, location=location, scheduled_for=at(i), started_at=at(i), finished_at=at(i),
                           latency_ms=1, outcome="success", evidence={"partner_follow_made": True} if made else {})
    ((rule, used),) = own_usage(partner, platform_limits("mastodon", {"follows": [400, 86400]}), at(60))
    assert rule.family == "follows" and used == 2
    # Only within the limit's period: a day later, the first follow has left the window.
    ((_, later),) = own_usage(partner, platform_limits("mastodon", {"follows": [400, 86400]}), at(86400 + 1.5))
    assert later == 1
