"""The Mastodon adapter over real HTTP against the sandbox: every action, every fault, cleanup."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from probes.models import Artifact, FailureClass, Outcome, ProbeLocation, Run
from probes.runner import cleanup_pending, run_execute
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe

ACTIONS = ["post", "repost", "follow", "dm", "read", "limits"]


def run_once(probe, location) -> Run:
    placement = ProbeLocation.objects.get(probe=probe, location=location)
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


@pytest.mark.django_db
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_succeeds_and_leaves_nothing_behind(action, platform, locations, sandbox):
    probe = make_probe(platform, action, locations)
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert run.failure_class == ""
    assert run.steps and all(step["ok"] for step in run.steps if step["name"] != "over-long post")
    assert sandbox.leftovers() == 0
    assert not Artifact.objects.filter(cleaned_at__isnull=True).exists()
    expected_cleanup = Run.Cleanup.NONE if action in ("read", "limits") else Run.Cleanup.DONE
    assert run.cleanup == expected_cleanup


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["post", "repost", "follow", "dm"])
def test_quota_exceeded_is_classified_with_the_evidence_on_record(action, platform, locations, sandbox):
    probe = make_probe(platform, action, locations)
    sandbox.fault("quota_exceeded", action)
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.FAILURE
    assert run.failure_class == FailureClass.QUOTA_EXCEEDED
    assert run.evidence["status_code"] == 429
    assert run.evidence["rate_limit"]["x-ratelimit-remaining"] == "0"
    assert "daily limit" in run.evidence["platform_error"] or "unable to follow" in run.evidence["platform_error"]
    assert sandbox.leftovers() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["post", "repost", "follow", "dm"])
def test_read_only_platform_is_told_apart_from_a_server_error(action, platform, locations, sandbox):
    probe = make_probe(platform, action, locations)
    sandbox.fault("read_only", action)
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.READ_ONLY
    assert run.evidence["status_code"] == 503
    assert any(step["name"] == "diagnostic read" and step["ok"] for step in run.steps)


@pytest.mark.django_db
@pytest.mark.parametrize("action", ACTIONS)
def test_server_error_fault(action, platform, locations, sandbox):
    # Everything failing is a server error (the diagnostic read fails too).
    probe = make_probe(platform, action, locations)
    sandbox.fault("server_error", "*")
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.SERVER_ERROR
    assert run.evidence["status_code"] == 500


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["post", "repost", "follow", "dm"])
def test_writes_answering_5xx_while_reads_work_are_read_only(action, platform, locations, sandbox):
    """The class follows the evidence: a write refused with a 500 while the same account still
    reads is the platform refusing writes, whatever the status code says."""
    probe = make_probe(platform, action, locations)
    sandbox.fault("server_error", action)
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.READ_ONLY
    assert run.evidence["status_code"] == 500
    assert any(step["name"] == "diagnostic read" and step["ok"] for step in run.steps)


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["post", "read"])
def test_slow_platform_times_out_within_the_probe_timeout(action, platform, locations, sandbox):
    probe = make_probe(platform, action, locations, timeout_s=0.6)
    sandbox.fault("slow:1500", action)
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.TIMEOUT
    assert run.latency_ms < 1400


@pytest.mark.django_db
def test_slow_but_within_timeout_succeeds_and_measures_the_latency(platform, locations, sandbox):
    probe = make_probe(platform, "read", locations, timeout_s=5)
    sandbox.fault("slow:300", "read")
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.SUCCESS
    assert run.latency_ms >= 300


@pytest.mark.django_db
@pytest.mark.parametrize("action", ACTIONS)
def test_dropped_connection_is_a_connect_failure(action, platform, locations, sandbox):
    probe = make_probe(platform, action, locations)
    sandbox.fault("drop", "*" if action == "limits" else action)
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.CONNECT


@pytest.mark.django_db
def test_accepting_an_overlong_post_is_an_invariant_failure_and_the_post_is_deleted(platform, locations, sandbox):
    probe = make_probe(platform, "limits", locations)
    sandbox.fault("accept_overlong", "post")
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.INVARIANT
    assert "501 characters" in run.error
    assert run.cleanup == Run.Cleanup.DONE
    assert sandbox.leftovers() == 0


@pytest.mark.django_db
def test_a_fault_scoped_to_one_location_fails_only_that_location(platform, locations, sandbox):
    probe = make_probe(platform, "post", locations)
    sacramento, atlanta = locations
    sandbox.fault("server_error", "post", location="atlanta")
    assert run_once(probe, sacramento).outcome == Outcome.SUCCESS
    assert run_once(probe, atlanta).failure_class == FailureClass.READ_ONLY  # writes 500, reads work


@pytest.mark.django_db
def test_a_wrong_token_is_an_auth_failure_and_never_stored(platform, locations, sandbox):
    account = platform.accounts.get(role="prober")
    account.token = "wrong-token-value-1234"
    account.save()
    probe = make_probe(platform, "post", locations)
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.AUTH
    stored = str(Run.objects.filter(id=run.id).values().get())
    for secret in ("wrong-token-value-1234", PROBER_TOKEN, PARTNER_TOKEN):
        assert secret not in stored


@pytest.mark.django_db
def test_a_failed_cleanup_is_retried_later_until_the_artifact_is_gone(platform, locations, sandbox):
    probe = make_probe(platform, "post", locations)
    # A status on the platform whose cleanup is on record but not done (as after a crash).
    created = requests.post(sandbox.url + "/api/v1/statuses", data={"status": "left behind", "visibility": "unlisted"},
                            headers={"Authorization": f"Bearer {PROBER_TOKEN}"}, timeout=5).json()
    Artifact.objects.create(run_key=uuid.uuid4(), probe=probe, account=platform.accounts.get(role="prober"),
                            kind=Artifact.Kind.STATUS, remote_id=created["id"],
                            created_at=timezone.now() - timedelta(minutes=5),
                            next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert sandbox.leftovers() == 1

    sandbox.fault("read_only", "post")  # deletes refused
    assert cleanup_pending() == 0
    artifact = Artifact.objects.get(remote_id=created["id"])
    assert artifact.cleaned_at is None and artifact.attempts == 1 and "503" in artifact.last_error
    assert artifact.next_attempt_at > timezone.now()  # backed off, not hammered

    sandbox.clear_faults()
    Artifact.objects.filter(id=artifact.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert cleanup_pending() == 1
    assert sandbox.leftovers() == 0
    assert Artifact.objects.get(id=artifact.id).cleaned_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["quota_exceeded", "read_only"])
def test_the_limits_probe_holds_when_writes_are_refused_anyway_and_says_it_was_untested(fault, platform, locations,
                                                                                        sandbox):
    probe = make_probe(platform, "limits", locations)
    sandbox.fault(fault, "post")
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.SUCCESS
    assert "before its length was checked" in run.evidence["limit_untested"]


@pytest.mark.django_db
def test_a_token_with_a_line_break_fails_as_auth_and_is_never_stored(platform, locations, sandbox):
    account = platform.accounts.get(role="prober")
    account.token = PROBER_TOKEN + "\n"  # as read from a file
    account.save()
    probe = make_probe(platform, "post", locations)
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.AUTH
    assert PROBER_TOKEN not in str(Run.objects.filter(id=run.id).values().get())


@pytest.mark.django_db
def test_a_token_encrypted_with_another_key_is_an_auth_failure_that_names_the_cause(platform, locations, sandbox,
                                                                                   settings):
    probe = make_probe(platform, "read", locations)
    settings.VIGIE_ENCRYPTION_KEY = "0" * 43 + "="  # a different (valid) Fernet key
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.AUTH
    assert "cannot be decrypted" in run.error and "VIGIE_ENCRYPTION_KEY" in run.error
    for role, token in (("prober", PROBER_TOKEN), ("partner", PARTNER_TOKEN)):
        account = platform.accounts.get(role=role)
        account.token = token  # set again, with the new key: it works again
        account.save()
    assert run_once(probe, locations[0]).outcome == Outcome.SUCCESS


@pytest.mark.django_db
def test_reposting_reuses_the_kept_target_and_survives_a_posting_outage(platform, locations, sandbox):
    probe = make_probe(platform, "repost", locations)
    first = run_once(probe, locations[0])
    target = platform.accounts.get(role="partner").fixture_id
    assert first.outcome == Outcome.SUCCESS and target
    sandbox.fault("quota_exceeded", "post")  # posting is down; reposting an existing post is not
    second = run_once(probe, locations[1])
    assert second.outcome == Outcome.SUCCESS
    assert "make repost target" not in [s["name"] for s in second.steps]
    assert platform.accounts.get(role="partner").fixture_id == target
    assert sandbox.leftovers() == 0


@pytest.mark.django_db
def test_a_deleted_repost_target_is_made_again(platform, locations, sandbox):
    probe = make_probe(platform, "repost", locations)
    run_once(probe, locations[0])
    old = platform.accounts.get(role="partner").fixture_id
    requests.delete(f"{sandbox.url}/api/v1/statuses/{old}", headers={"Authorization": f"Bearer {PARTNER_TOKEN}"},
                    timeout=5)
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.SUCCESS
    assert platform.accounts.get(role="partner").fixture_id not in ("", old)
    assert sandbox.leftovers() == 0
