"""Edges of detection found in review: recoveries that are not measured, budgets, flapping exits."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from detection.evaluation import watchdog
from probes.models import Account, Artifact, PlacementState, Platform, Probe, ProbeLocation
from detection.models import Component, ComponentStatus, Incident, IncidentStatus, Maintenance, OwnProblem
from detection.simulation import demo_layout, record_run

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=dt_timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def demo(db):
    return demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(hours=1))


def placement(action: str, location: str) -> ProbeLocation:
    return ProbeLocation.objects.select_related("probe", "location").get(probe__action=action,
                                                                          location__name=location)


def fail_posting(start: int, count: int, locations=("atlanta", "sacramento"), **kwargs) -> None:
    for i in range(count):
        for location in locations:
            record_run(placement("post", location), at(start + 30 * i), failure_class="server_error", **kwargs)


def test_a_recovery_through_slow_runs_resolves_at_the_first_successful_run(demo):
    fail_posting(0, 5)
    assert Incident.objects.get().resolved_at is None
    for i in range(5, 9):
        for location in ("atlanta", "sacramento"):
            record_run(placement("post", location), at(30 * i), latency_ms=5000)
    incident = Incident.objects.get()
    assert Component.objects.get(name="Posting").status == ComponentStatus.DEGRADED
    assert incident.resolved_at == at(150)  # the first (slow but successful) run of the recovery
    assert incident.duration == timedelta(seconds=150)


def test_a_maintenance_starting_during_an_outage_does_not_resolve_it(demo):
    fail_posting(0, 5)
    window = Maintenance.objects.create(title="Emergency fix", scheduled_for=at(140), scheduled_until=at(3600))
    window.components.set(Component.objects.filter(name="Posting"))
    fail_posting(150, 2)
    assert Component.objects.get(name="Posting").status == ComponentStatus.MAINTENANCE
    incident = Incident.objects.get()
    assert incident.resolved_at is None
    assert not incident.updates.filter(status=IncidentStatus.RESOLVED).exists()


def test_a_failing_location_that_goes_silent_does_not_resolve_the_incident(demo):
    for i in range(5):
        record_run(placement("post", "sacramento"), at(30 * i))
        record_run(placement("post", "atlanta"), at(30 * i + 1), failure_class="server_error")
    assert Incident.objects.get().resolved_at is None
    for i in range(5, 10):  # sacramento goes on, atlanta falls silent
        record_run(placement("post", "sacramento"), at(30 * i))
    watchdog(now=at(30 * 10))
    assert placement("post", "atlanta").state == PlacementState.UNKNOWN
    assert Incident.objects.get().resolved_at is None  # nothing measured the recovery
    # Atlanta comes back failing once: a fresh streak, not the old one, and still one incident.
    record_run(placement("post", "atlanta"), at(30 * 11), failure_class="server_error")
    p = placement("post", "atlanta")
    assert p.state == PlacementState.UNKNOWN and p.consecutive_failures == 1 and p.streak_started_at == at(330)
    assert Incident.objects.count() == 1
    for i in range(12, 14):
        record_run(placement("post", "atlanta"), at(30 * i))
    incident = Incident.objects.get()
    # The end is the first measured success of the recovery; the silence in between is in the
    # uncertainty (the last failing run before it was at 330 s).
    assert incident.resolved_at == at(360)
    assert incident.resolved_uncertainty_s == 30


def test_monitoring_goes_back_to_investigating_when_runs_fail_again(demo):
    fail_posting(0, 5)
    for location in ("atlanta", "sacramento"):
        record_run(placement("post", location), at(150))
    assert Incident.objects.get().status == IncidentStatus.MONITORING
    fail_posting(180, 1)
    incident = Incident.objects.get()
    assert incident.status == IncidentStatus.INVESTIGATING
    assert incident.updates.order_by("-created_at", "-id").first().body.startswith("Failing again from")


def test_leaving_failing_takes_the_success_threshold_even_when_flapping(demo):
    p = placement("post", "atlanta")
    for i, failed in enumerate("SSSSSFSFF"):
        record_run(p, at(30 * i), failure_class="server_error" if failed == "F" else "")
    assert placement("post", "atlanta").state == PlacementState.FAILING
    record_run(p, at(30 * 9))  # one success makes it flapping, but one is not two
    assert placement("post", "atlanta").state == PlacementState.FAILING
    record_run(p, at(30 * 10))
    assert placement("post", "atlanta").state == PlacementState.DEGRADED  # recovered, still flapping


def test_a_budget_near_the_follow_limit_does_not_explain_a_posting_quota_refusal(demo):
    platform = Platform.objects.get()
    Platform.objects.filter(id=platform.id).update(kind="mastodon")
    prober = Account.objects.create(platform=platform, role="prober", username="vigie", token="t")
    follow = Probe.objects.get(action="follow")
    for i in range(330):  # 330 follows of 400 a day: a follow refusal would be ours
        Artifact.objects.create(run_key="00000000-0000-0000-0000-%012d" % i, probe=follow, account=prober,
                                kind="follow", remote_id=str(i), created_at=at(-3600))
    for i in range(5):
        for location in ("atlanta", "sacramento"):
            run = record_run(placement("post", location), at(30 * i), failure_class="quota_exceeded")
    assert "self_inflicted" not in run.evidence
    assert Incident.objects.get().effective_impact == "critical"
    follow_run = record_run(placement("follow", "atlanta"), at(200), failure_class="quota_exceeded")
    assert follow_run.evidence["self_inflicted"] is True
    assert OwnProblem.objects.get(kind=OwnProblem.Kind.PROBE_BUDGET).resolved_at is None
    Artifact.objects.filter(kind="follow").delete()
    watchdog(now=at(210))
    assert OwnProblem.objects.get(kind=OwnProblem.Kind.PROBE_BUDGET).resolved_at is not None


def test_a_failing_location_that_succeeds_once_keeps_the_start_of_its_outage(demo):
    """Found by the batch-equivalence property (test_recorder): a success short of recovering
    used to start a new streak, so an incident opened later began after it was detected."""
    post = placement("post", "atlanta")
    for i in range(3):  # failing from the third (threshold), detected then
        record_run(post, at(30 * i), failure_class="server_error")
    post.refresh_from_db()
    assert post.state == PlacementState.FAILING and post.streak_started_at == at(0)
    record_run(post, at(90))  # one success: not recovered
    for i in range(4, 8):
        record_run(post, at(30 * i), failure_class="server_error")
    post.refresh_from_db()
    assert post.state == PlacementState.FAILING and post.streak_started_at == at(0)
    for incident in Incident.objects.all():
        assert incident.started_at <= incident.detected_at


def test_flapping_does_not_mask_a_streak_of_failures(demo):
    """Issue 16: earlier false failures made Following flapping; then every run failed for real,
    and it stayed "degraded". A streak of failures is failing, flapping or not."""
    p = placement("post", "atlanta")
    t = 0
    for outcome in "SFSFSFSF":
        record_run(p, at(30 * t), failure_class="" if outcome == "S" else "server_error")
        t += 1
    assert placement("post", "atlanta").flapping
    assert placement("post", "atlanta").state == PlacementState.DEGRADED
    streak_start = at(30 * t)
    for _ in range(2 * demo.probes.get(action="post").failure_threshold):
        record_run(p, at(30 * t), failure_class="read_only")
        t += 1
    now = placement("post", "atlanta")
    assert now.state == PlacementState.FAILING
    assert now.streak_started_at == streak_start
    assert Component.objects.get(name="Posting").status in (ComponentStatus.PARTIAL, ComponentStatus.MAJOR)
