"""Locations never collide on one account (issue 16, point 2): placements are staggered per
location, and a duplicate concurrent follow refused by the server's unique constraint (Takahē
answers 500) is Vigie's own doing, never counted against the platform. Also the Mastodon mode for
locked or remote accounts: a follow answered `requested` counts as accepted. Real HTTP to the sandbox."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from detection.models import OwnProblem
from probes.models import Account, Location, PlacementState, Platform, ProbeLocation, Run, staggered_start
from probes.runner import run_execute
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe, sandbox_fresh, sandbox_serving


@pytest.fixture(scope="module")
def takahe_server():
    yield from sandbox_serving(compat="takahe", follow_delay_s=0.3)


@pytest.fixture(scope="module")
def locked_server():
    yield from sandbox_serving(compat="mastodon-locked", follow_delay_s=0.3)


@pytest.fixture
def takahe(takahe_server):
    yield from sandbox_fresh(takahe_server)


@pytest.fixture
def locked(locked_server):
    yield from sandbox_fresh(locked_server)


def platform_on(sandbox, **fields) -> Platform:
    platform = Platform.objects.create(name="Self-hosted", slug="selfhosted", kind="mastodon", base_url=sandbox.url,
                                       **fields)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    return platform


def follows_at_once(url: str, n: int = 2) -> list[int]:
    barrier = threading.Barrier(n)
    codes: list[int] = []

    def one():
        barrier.wait()
        codes.append(requests.post(f"{url}/api/v1/accounts/2/follow", timeout=5,
                                   headers={"Authorization": f"Bearer {PROBER_TOKEN}"}).status_code)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(codes)


def test_takahe_mode_answers_a_duplicate_concurrent_follow_with_500_html(takahe):
    sandbox = takahe
    assert follows_at_once(sandbox.url) == [200, 500]
    # One at a time is fine: the second finds the row.
    assert requests.post(f"{sandbox.url}/api/v1/accounts/2/follow", timeout=5,
                         headers={"Authorization": f"Bearer {PROBER_TOKEN}"}).status_code == 200


def runs_at_once(probe) -> list[Run]:
    """One run of `probe` at each of its locations, at the same moment (their first runs after a start)."""
    placements = list(ProbeLocation.objects.filter(probe=probe).order_by("id"))
    barrier = threading.Barrier(len(placements))
    results: list[Run] = []

    def run(placement):
        from django.db import connection

        barrier.wait()
        try:
            results.append(run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()),
                                       scheduled_for=timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in placements]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_a_collided_follow_is_self_inflicted_undone_and_not_counted_against_the_platform(takahe, locations):
    sandbox = takahe
    platform = platform_on(sandbox, settle_s=2)
    probe = make_probe(platform, "follow", locations, component="Following")
    results = runs_at_once(probe)
    by_outcome = {r.outcome: r for r in results}
    assert set(by_outcome) == {"success", "failure"}, [(r.outcome, r.error) for r in results]
    collided = by_outcome["failure"]
    assert collided.failure_class == "server_error" and collided.evidence["self_inflicted"] == "collision"
    # The follow is the other run's (on record once, undone once): nothing left.
    assert collided.cleanup == Run.Cleanup.NONE and by_outcome["success"].cleanup == Run.Cleanup.DONE
    assert sandbox.leftovers() == 0, sandbox.artifacts()
    # Not evidence against the platform: the placement saw no failure; on-call is told.
    placement = ProbeLocation.objects.get(probe=probe, location_id=collided.location_id)
    assert placement.consecutive_failures == 0 and placement.state != PlacementState.FAILING
    assert OwnProblem.objects.filter(kind=OwnProblem.Kind.PROBE_COLLISION, resolved_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_read_only_follow_answered_500_is_still_read_only(takahe, locations):
    sandbox = takahe
    platform = platform_on(sandbox, settle_s=0.5)
    probe = make_probe(platform, "follow", locations[:1])
    sandbox.fault("read_only", "*")
    result = run_execute(placement_id=probe.placements.get().id, run_key=str(uuid.uuid4()),
                         scheduled_for=timezone.now())
    assert result.failure_class == "read_only" and "self_inflicted" not in result.evidence


@pytest.mark.django_db
def test_locations_are_staggered_so_they_never_act_in_the_same_slot():
    now = timezone.now()
    places = [Location.objects.create(name=name) for name in ("a", "b", "c")]
    starts = [staggered_start(p.id, 30, now) for p in places]
    assert starts == [now, now + timedelta(seconds=10), now + timedelta(seconds=20)]  # evenly spread


@pytest.mark.django_db
def test_config_apply_staggers_the_placements_of_one_probe(monkeypatch):
    from oncall.config import config_apply, config_load

    monkeypatch.setenv("STAGGER_TOKEN", "t")
    data = config_load("""
locations: [{name: a, label: A}, {name: b, label: B}]
platforms:
  - {slug: s, name: S, kind: sandbox, base_url: "http://127.0.0.1:9", accounts: {prober: {username: p, token: "${STAGGER_TOKEN}"}}}
probes:
  - {slug: s-follow, name: Follow, platform: s, action: follow, interval: 30, locations: [a, b]}
components: []
""")
    config_apply(data)
    first, second = ProbeLocation.objects.order_by("location__name").values_list("next_run_at", flat=True)
    assert abs((second - first).total_seconds() - 15) < 1


@pytest.mark.django_db(transaction=True)
def test_a_follow_answered_requested_by_a_locked_account_counts_as_accepted(locked, locations):
    sandbox = locked
    answer = requests.post(f"{sandbox.url}/api/v1/accounts/2/follow", timeout=5,
                           headers={"Authorization": f"Bearer {PROBER_TOKEN}"}).json()
    assert answer["requested"] is True and answer["following"] is False
    requests.post(f"{sandbox.url}/api/v1/accounts/2/unfollow", timeout=5,
                  headers={"Authorization": f"Bearer {PROBER_TOKEN}"})
    platform = platform_on(sandbox)
    probe = make_probe(platform, "follow", locations[:1])
    result = run_execute(placement_id=probe.placements.get().id, run_key=str(uuid.uuid4()),
                         scheduled_for=timezone.now())
    assert result.outcome == "success", result.error
    assert result.evidence["follow_answer"] == {"following": False, "requested": True}
    assert result.cleanup == Run.Cleanup.DONE and sandbox.leftovers() == 0


@pytest.mark.django_db(transaction=True)
def test_a_follow_undone_by_another_run_of_the_account_meanwhile_is_a_collision_not_an_invariant(takahe, locations):
    """Seen live (takahe-follow at a 3 s interval): one location's follow is still settling when
    another location's run of the same account, which followed the same partner a moment before,
    undoes it. The relationship never shows: Vigie's own doing, never counted against the platform."""
    from probes.models import Artifact

    sandbox = takahe
    platform = platform_on(sandbox, settle_s=1)
    probe = make_probe(platform, "follow", locations[:1], component="Following")
    prober = Account.objects.get(platform=platform, role="prober")
    other_run = uuid.uuid4()  # the other location's run: its follow of the partner is in flight
    Artifact.objects.create(run_key=other_run, probe=probe, account=prober, kind="follow", remote_id="2",
                            created_at=timezone.now(), next_attempt_at=timezone.now() + timedelta(hours=1))

    def other_run_undoes():
        from django.db import connection

        try:  # as soon as this run's follow is on record, the other run's cleanup unfollows
            for _ in range(300):
                if not Artifact.objects.filter(run_key=other_run).exists():
                    requests.post(f"{sandbox.url}/api/v1/accounts/2/unfollow", timeout=5,
                                  headers={"Authorization": f"Bearer {PROBER_TOKEN}"})
                    return
                threading.Event().wait(0.005)
        finally:
            connection.close()

    undoer = threading.Thread(target=other_run_undoes)
    undoer.start()
    run = run_execute(placement_id=probe.placements.get().id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
    undoer.join()
    assert run.outcome == "failure" and run.failure_class == "invariant", (run.outcome, run.error)
    assert run.evidence["self_inflicted"] == "collision" and "another run of this account" in run.error
    placement = probe.placements.get()
    assert placement.consecutive_failures == 0 and placement.state != PlacementState.FAILING
    assert OwnProblem.objects.filter(kind=OwnProblem.Kind.PROBE_COLLISION, resolved_at__isnull=True).exists()
    assert sandbox.leftovers() == 0, sandbox.artifacts()


@pytest.mark.django_db(transaction=True)
def test_two_first_delivery_runs_making_the_standing_follow_at_once_are_a_collision_not_the_platforms(takahe,
                                                                                                      locations):
    """Seen live at every start of `manage.py up --compat takahe`: both locations' first delivery
    runs find the partner not following the prober and follow at once; Takahē answers the second
    500. The follow is in effect: Vigie's own doing, never a read-only failure of the platform."""
    platform = platform_on(takahe, settle_s=3)
    probe = make_probe(platform, "delivery", locations, component="Post delivery")
    results = runs_at_once(probe)
    failed = [r for r in results if r.outcome == "failure"]
    assert len(failed) <= 1, [(r.outcome, r.error) for r in results]  # the two may also not overlap
    for run in failed:
        assert run.evidence.get("self_inflicted") == "collision", (run.failure_class, run.error)
        assert "another run of this account followed at the same moment" in run.error
        placement = ProbeLocation.objects.get(probe=probe, location_id=run.location_id)
        assert placement.consecutive_failures == 0
    assert takahe.artifacts()["vigie_partner"]["follows"] == 1  # the standing follow, once
    assert takahe.leftovers() == 0, takahe.artifacts()
