"""Truth against servers that answer like real ones (issue 16): asynchronous effects are awaited,
artifacts are recorded before any check, the failure class follows the evidence. Real HTTP to the
sandbox in Takahē compat mode."""
from __future__ import annotations

import uuid

import pytest
import requests
from django.utils import timezone

from probes.models import Account, Artifact, Platform, ProbeLocation, Run
from probes.runner import run_execute
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe, sandbox_fresh, sandbox_serving


@pytest.fixture(scope="module")
def takahe_server():
    yield from sandbox_serving(compat="takahe")


@pytest.fixture
def takahe(takahe_server):
    yield from sandbox_fresh(takahe_server)


@pytest.fixture
def takahe_platform(db, takahe):
    platform = Platform.objects.create(name="Takahe", slug="takahe", kind="mastodon", base_url=takahe.url)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    return platform


def run(platform: Platform, locations, action: str) -> Run:
    probe = platform.probes.filter(action=action).first() or make_probe(platform, action, locations[:1])
    placement = ProbeLocation.objects.filter(probe=probe).first()
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


def test_the_takahe_sandbox_answers_a_follow_pending_then_makes_it_effective(takahe):
    auth = {"Authorization": f"Bearer {PROBER_TOKEN}"}
    answer = requests.post(f"{takahe.url}/api/v1/accounts/2/follow", headers=auth, timeout=5).json()
    assert answer["following"] is False and answer["requested"] is False
    import time
    time.sleep(1.2)  # the sandbox's worker delay; not an assertion on timing
    later = requests.get(f"{takahe.url}/api/v1/accounts/relationships?id[]=2", headers=auth, timeout=5).json()
    assert later[0]["following"] is True


@pytest.mark.django_db(transaction=True)
def test_a_follow_completed_later_is_awaited_not_judged_wrong(takahe, takahe_platform, locations):
    result = run(takahe_platform, locations, "follow")
    assert result.outcome == "success", result.error
    reads = result.evidence["follow_reads"]
    assert len(reads) >= 2 and reads[-1]["following"] is True and reads[0]["following"] is False
    assert result.evidence["follow_answer"] == {"following": False, "requested": False}
    assert result.evidence["effective_ms"] >= result.evidence["accepted_ms"]
    assert result.cleanup == Run.Cleanup.DONE
    assert takahe.leftovers() == 0, takahe.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_follow_still_wrong_after_the_settle_time_is_invariant_with_every_read_and_is_undone(
        takahe, takahe_platform, locations):
    Platform.objects.filter(id=takahe_platform.id).update(settle_s=0.3)  # shorter than the server's 1 s
    result = run(takahe_platform, locations, "follow")
    assert result.outcome == "failure" and result.failure_class == "invariant"
    assert "0.3 s" in result.error
    reads = result.evidence["follow_reads"]
    assert reads and all(r["following"] is False for r in reads)
    assert [s["name"] for s in result.steps].count("relationship") == len(reads)
    # Recorded the moment it was accepted: the failed check still undid it.
    assert result.cleanup == Run.Cleanup.DONE
    assert Artifact.objects.filter(kind=Artifact.Kind.FOLLOW, cleaned_at__isnull=False).count() == 1
    assert takahe.leftovers() == 0, takahe.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_requested_follow_of_a_locked_account_counts_as_accepted(sandbox, platform, locations, monkeypatch):
    from sandbox import entities

    original = entities.relationship_json

    def locked(state, viewer, target):
        answer = original(state, viewer, target)
        return {**answer, "following": False, "requested": answer["following"]}

    monkeypatch.setattr(entities, "relationship_json", locked)
    result = run(platform, locations, "follow")
    assert result.outcome == "success", result.error
    assert result.evidence["follow_answer"] == {"following": False, "requested": True}
    assert sandbox.leftovers() == 0


# --- the failure class follows the evidence ----------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["post", "repost", "follow", "dm"])
def test_takahe_refusing_writes_with_a_500_html_page_is_read_only(takahe, takahe_platform, locations, action):
    takahe.fault("read_only", action)
    result = run(takahe_platform, locations, action)
    assert result.failure_class == "read_only", result.error
    assert result.evidence["status_code"] == 500
    assert takahe.leftovers() == 0, takahe.artifacts()


@pytest.mark.django_db(transaction=True)
def test_the_limit_probe_during_takahe_read_only_says_untested_not_a_crash(takahe, takahe_platform, locations):
    takahe.fault("read_only", "*")
    result = run(takahe_platform, locations, "limits")
    assert result.outcome == "success"
    assert "read_only" in result.evidence["limit_untested"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["post", "read", "limits"])
def test_a_bad_token_answered_400_html_is_auth(takahe, takahe_platform, locations, action):
    Account.objects.filter(platform=takahe_platform, role="prober").update(token="not-the-token")
    result = run(takahe_platform, locations, action)
    assert result.failure_class == "auth", (result.failure_class, result.error)
    assert result.evidence["status_code"] == 400


@pytest.mark.django_db
def test_an_incident_title_says_read_only_only_when_the_runs_say_so(db):
    from datetime import datetime, timedelta, timezone as dt_timezone

    from detection.models import Component, Incident
    from probes.models import Location, Probe
    from detection.simulation import record_run

    t0 = datetime(2026, 2, 8, 17, 0, tzinfo=dt_timezone.utc)
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url="http://127.0.0.1:9")
    location = Location.objects.create(name="atlanta")
    for position, action in enumerate(["post", "repost", "follow", "dm", "read"]):
        probe = Probe.objects.create(name=action, slug=action, platform=platform, action=action, interval_s=30)
        ProbeLocation.objects.create(probe=probe, location=location, created_at=t0 - timedelta(minutes=1))
        Component.objects.create(name=action.title(), position=position).probes.add(probe)
    for i in range(6):
        for placement in ProbeLocation.objects.select_related("probe", "location"):
            failing = placement.probe.action != "read"
            record_run(placement, t0 + timedelta(seconds=30 * i + placement.id),
                       failure_class="server_error" if failing else "")
    title = Incident.objects.get().title
    assert "read-only" not in title and "server errors" in title


@pytest.mark.django_db
def test_public_incident_text_never_quotes_the_platforms_raw_answer(db):
    """The raw body stays in the evidence for on-call; the public reads Vigie's sentence."""
    from datetime import datetime, timedelta, timezone as dt_timezone

    from detection.models import Component, Incident, IncidentUpdate
    from probes.models import Location, Probe
    from detection.simulation import record_run

    t0 = datetime(2026, 2, 8, 17, 0, tzinfo=dt_timezone.utc)
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url="http://127.0.0.1:9")
    location = Location.objects.create(name="atlanta")
    probe = Probe.objects.create(name="post", slug="post", platform=platform, action="post", interval_s=30)
    placement = ProbeLocation.objects.create(probe=probe, location=location, created_at=t0 - timedelta(minutes=1))
    Component.objects.create(name="Posting").probes.add(probe)
    raw = '{"id": "117020586019094258", "content": "<p>Vigie availability probe</p>"}'
    for i in range(6):
        record_run(ProbeLocation.objects.select_related("probe", "location").get(id=placement.id),
                   t0 + timedelta(seconds=30 * i), failure_class="invariant", status_code=200, platform_error=raw)
    incident = Incident.objects.get()
    assert incident.evidence["platform_error"] == raw  # on-call keeps it
    bodies = " ".join(IncidentUpdate.objects.values_list("body", flat=True))
    assert "117020586019094258" not in bodies and "{" not in bodies and "content" not in bodies
    assert "wrong results accepted" in bodies


# --- nothing left behind ---------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_lost_delete_is_caught_by_reading_back_and_done_again_later(sandbox, platform, locations):
    from probes.runner import cleanup_pending

    sandbox.fault("delete_lost", "post")
    result = run(platform, locations, "post")
    assert result.outcome == "success"
    assert result.cleanup == Run.Cleanup.PENDING  # answered 200, still readable: not marked done
    row = Artifact.objects.get(kind=Artifact.Kind.STATUS)
    assert row.cleaned_at is None and "still readable" in row.last_error
    assert sandbox.leftovers() == 1
    sandbox.clear_faults()
    Artifact.objects.update(next_attempt_at=timezone.now())
    assert cleanup_pending(min_age=__import__("datetime").timedelta(0)) == 1
    assert sandbox.leftovers() == 0


@pytest.mark.django_db(transaction=True)
def test_two_runs_racing_to_make_the_repost_target_leave_one(sandbox, platform, locations):
    """Both locations' first runs read the partner with no target and each made one: the first to
    store it keeps it, the other deletes its own."""
    from probes.runner import run_perform

    probe = make_probe(platform, "repost", locations)
    stale = list(platform.accounts.all())  # as both runs loaded them: no repost target yet
    for placement in ProbeLocation.objects.filter(probe=probe).select_related("probe__platform", "location"):
        done = run_perform(placement=placement, accounts=stale,
                           run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
        assert done.outcome == "success", done.error
    partner = Account.objects.get(role="partner")
    assert partner.fixture_id
    partner_statuses = sandbox.artifacts()["vigie_partner"]["statuses"]
    assert partner_statuses == 1, sandbox.artifacts()
    assert sandbox.leftovers() == 0


@pytest.mark.django_db(transaction=True)
def test_the_limit_probe_that_cannot_test_leaves_its_component_unknown_not_green(takahe, takahe_platform, locations):
    from detection.models import Component, ComponentStatus

    result = run(takahe_platform, locations, "limits")  # tested: up
    Component.objects.create(name="Post length limit").probes.add(result.probe)
    result = run(takahe_platform, locations, "limits")
    assert Component.objects.get().status == ComponentStatus.OPERATIONAL
    takahe.fault("read_only", "*")
    result = run(takahe_platform, locations, "limits")
    assert result.outcome == "success" and result.evidence["limit_untested"]
    assert ProbeLocation.objects.get(probe=result.probe).state == "unknown"
    assert Component.objects.get().status == ComponentStatus.UNKNOWN
    takahe.clear_faults()
    run(takahe_platform, locations, "limits")
    assert Component.objects.get().status == ComponentStatus.OPERATIONAL
