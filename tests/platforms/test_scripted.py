"""Scripted HTTP probes, run for real against the sandbox's HTTP API: steps, assertions,
extractions, and cleanup steps on the artifact ledger."""
from __future__ import annotations

import copy
import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from platforms.adapters.base import CreatedArtifact
from platforms.adapters.scripted import json_path, script_problems
from probes.models import Account, Artifact, Platform, Probe, ProbeLocation, Run
from probes.runner import artifact_record, cleanup_pending, run_execute
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN

POST_SCRIPT = {
    "steps": [
        {"name": "create", "method": "POST", "url": "/api/v1/statuses",
         "headers": {"Authorization": "Bearer ${token}", "Idempotency-Key": "${run_key}"},
         "json": {"status": "scripted probe ${run_key}", "visibility": "unlisted"},
         "expect": {"status": 200, "json": {"$.id": {"exists": True}, "$.visibility": "unlisted"}},
         "extract": {"status_id": "$.id"}},
        {"name": "read back", "url": "/api/v1/statuses/${status_id}",
         "headers": {"Authorization": "Bearer ${token}"},
         "expect": {"json": {"$.content": {"contains": "scripted probe"}}, "body_contains": "${status_id}"}},
    ],
    "cleanup": [
        {"name": "delete", "method": "DELETE", "url": "/api/v1/statuses/${status_id}",
         "headers": {"Authorization": "Bearer ${token}"}},
    ],
}
LIMITS_SCRIPT = {
    "steps": [
        {"name": "over-long post", "method": "POST", "url": "/api/v1/statuses",
         "headers": {"Authorization": "Bearer ${token}"},
         "json": {"status": "x" * 600, "visibility": "private"},
         "expect": {"status": [400, 422]}, "extract": {"status_id": "$.id"}},
    ],
    "cleanup": [{"method": "DELETE", "url": "/api/v1/statuses/${status_id}",
                 "headers": {"Authorization": "Bearer ${token}"}}],
}


@pytest.fixture
def http_platform(db, sandbox):
    platform = Platform.objects.create(name="Notes API", slug="notes", kind="http", base_url=sandbox.url)
    Account.objects.create(platform=platform, role="prober", username="api", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="api2", token=PARTNER_TOKEN)
    return platform


def scripted(platform: Platform, locations, script: dict, action: str = "post", slug: str = "notes-post") -> ProbeLocation:
    probe = Probe.objects.create(name=slug, slug=slug, platform=platform, action=action, timeout_s=5, script=script)
    return ProbeLocation.objects.create(probe=probe, location=locations[0])


def run(placement: ProbeLocation) -> Run:
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


# --- validation -------------------------------------------------------------------------------

def test_the_example_scripts_are_valid():
    assert script_problems(POST_SCRIPT) == []
    assert script_problems(LIMITS_SCRIPT) == []


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["steps"][1].update(url="/api/v1/statuses/${nope}"), "steps[1]: unknown variable ${nope}"),
    (lambda s: s["steps"].reverse(), "steps[0]: unknown variable ${status_id} (is it extracted by a later step?)"),
    (lambda s: s["steps"][0].update(method="FETCH"), "steps[0].method: expected one of GET"),
    (lambda s: s["steps"][0]["expect"].update(status=999), "steps[0].expect.status: expected an HTTP status"),
    (lambda s: s["steps"][0]["expect"].update(json={"id": 1}), "steps[0].expect.json: 'id' is not a JSON path"),
    (lambda s: s["steps"][0].update(body="x"), "steps[0]: json and body are exclusive"),
    (lambda s: s["steps"][0].update(url="api/v1"), "steps[0].url: 'api/v1' is neither a path"),
    (lambda s: s["steps"][0]["extract"].update(token="$.id"), "steps[0].extract: 'token' is not a usable variable"),
    (lambda s: s["cleanup"][0].update(extract={"a": "$.a"}), "cleanup[0].extract: cleanup steps extract nothing"),
    (lambda s: s["steps"][0]["expect"].update(max_ms=True), "steps[0].expect.max_ms: expected whole milliseconds"),
    (lambda s: s.update(steps=[]), "script.steps: expected a non-empty list"),
    (lambda s: s["steps"][0].update(retries=3), "steps[0].retries: unknown key"),
    (lambda s: s["steps"][0]["headers"].update(Authorization="Bearer abc123"),
     "steps[0].headers: a credential must not be written in the script"),
])
def test_a_bad_script_is_refused_naming_the_step_and_what_was_expected(change, expected):
    script = copy.deepcopy(POST_SCRIPT)
    change(script)
    problems = script_problems(script)
    assert any(p.startswith(f"script.{expected}") or p.startswith(expected) for p in problems), problems


def test_json_paths_reach_into_objects_and_lists():
    data = {"items": [{"id": 7, "tags": ["a"]}], "n": 0}
    assert json_path(data, "$.items[0].id") == 7
    assert json_path(data, "$.items[0].tags[0]") == "a"
    assert json_path(data, "$.n") == 0
    assert json_path(data, "$.items[1].id") is not json_path(data, "$.items[0].id")  # missing, not an error


# --- runs against the sandbox -----------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_scripted_post_runs_reads_back_and_cleans_up(http_platform, locations, sandbox):
    placement = scripted(http_platform, locations, POST_SCRIPT)
    result = run(placement)
    assert result.outcome == "success", result.error
    assert [s["name"] for s in result.steps] == ["create", "read back"]
    assert result.cleanup == Run.Cleanup.DONE
    (artifact,) = Artifact.objects.all()
    assert artifact.kind == "scripted" and artifact.cleaned_at is not None
    assert PROBER_TOKEN not in artifact.remote_id and PROBER_TOKEN not in str(result.evidence)
    assert sandbox.leftovers() == 0, sandbox.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_failing_assertion_fails_the_run_and_what_was_made_is_still_removed(http_platform, locations, sandbox):
    script = copy.deepcopy(POST_SCRIPT)
    script["steps"][0]["expect"]["json"]["$.visibility"] = "public"
    result = run(scripted(http_platform, locations, script))
    assert result.outcome == "failure" and result.failure_class == "unexpected"
    assert "$.visibility is 'unlisted', expected 'public'" in result.error
    assert result.cleanup == Run.Cleanup.DONE
    assert sandbox.leftovers() == 0, sandbox.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_slow_step_over_its_max_ms_is_a_timeout(http_platform, locations, sandbox):
    script = copy.deepcopy(POST_SCRIPT)
    script["steps"][0]["expect"]["max_ms"] = 100
    sandbox.fault("slow:400", "post")
    result = run(scripted(http_platform, locations, script))
    assert result.failure_class == "timeout" and "more than 100 ms" in result.error
    assert sandbox.leftovers() == 0, sandbox.artifacts()


@pytest.mark.django_db(transaction=True)
def test_refusals_are_classified_like_any_platform(http_platform, locations, sandbox):
    sandbox.fault("quota_exceeded", "post")
    result = run(scripted(http_platform, locations, POST_SCRIPT))
    assert result.failure_class == "quota_exceeded"  # the reset is a day away: an allowance used up
    assert result.evidence["status_code"] == 429
    sandbox.clear_faults()
    sandbox.fault("server_error", "post")
    assert run(scripted(http_platform, locations, POST_SCRIPT, slug="again")).failure_class == "server_error"
    Account.objects.filter(role="prober").update(token="not-the-token")
    sandbox.clear_faults()
    refused = run(scripted(http_platform, locations, POST_SCRIPT, slug="third"))
    assert refused.failure_class == "auth" and "not-the-token" not in str(refused.evidence) + refused.error


@pytest.mark.django_db(transaction=True)
def test_a_limits_script_reports_an_accepted_over_long_post_as_invariant_and_deletes_it(http_platform, locations,
                                                                                          sandbox):
    placement = scripted(http_platform, locations, LIMITS_SCRIPT, action="limits", slug="notes-limits")
    assert run(placement).outcome == "success"  # the sandbox refuses with 422
    sandbox.fault("accept_overlong", "post")
    accepted = run(placement)
    assert accepted.failure_class == "invariant" and "what must be refused" in accepted.error
    assert accepted.cleanup == Run.Cleanup.DONE
    assert sandbox.leftovers() == 0, sandbox.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_cleanup_left_for_later_is_done_by_the_retry_pass_from_the_probe_script(http_platform, locations, sandbox):
    placement = scripted(http_platform, locations, POST_SCRIPT)
    made = requests.post(f"{sandbox.url}/api/v1/statuses", data={"status": "left behind", "visibility": "unlisted"},
                         headers={"Authorization": f"Bearer {PROBER_TOKEN}"}, timeout=5).json()
    prober = Account.objects.get(platform=http_platform, role="prober")
    artifact_record(run_key=str(uuid.uuid4()), probe_id=placement.probe_id, account=prober,
                    artifact=CreatedArtifact("scripted", f'0:{{"status_id":"{made["id"]}"}}', "prober"))
    assert sandbox.leftovers() == 1
    Artifact.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert cleanup_pending() == 1
    assert sandbox.leftovers() == 0, sandbox.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_script_without_accounts_reads_a_public_endpoint(db, locations, sandbox):
    platform = Platform.objects.create(name="Open API", slug="open", kind="http", base_url=sandbox.url)
    script = {"steps": [{"url": "/api/v2/instance", "expect": {"json": {"$.configuration.statuses.max_characters":
                                                                         {"exists": True}}}}]}
    assert run(scripted(platform, locations, script, action="read", slug="open-read")).outcome == "success"


# --- in the configuration file ------------------------------------------------------------------

SCRIPTED_CONFIG = """\
locations:
  - {name: here}
platforms:
  - slug: notes
    name: Notes API
    kind: http
    base_url: http://127.0.0.1:9
    accounts:
      prober: {username: api, token: "${NOTES_TOKEN}"}
probes:
  - slug: notes-post
    name: Create a note
    platform: notes
    action: post
    locations: [here]
    steps:
      - name: create
        method: POST
        url: /api/notes
        headers: {Authorization: "Bearer ${token}"}
        json: {text: "probe ${run_key}"}
        extract: {note_id: "$.id"}
    cleanup:
      - {method: DELETE, url: "/api/notes/${note_id}", headers: {Authorization: "Bearer ${token}"}}
components:
  - {name: Notes, probes: [notes-post]}
"""


def test_a_scripted_probe_in_the_configuration_is_checked_and_applied_as_written(db, monkeypatch):
    from oncall.config import config_apply, config_load

    monkeypatch.setenv("NOTES_TOKEN", "notes-secret-token")
    data = config_load(SCRIPTED_CONFIG, source="notes.yaml")
    assert config_apply(data)
    probe = Probe.objects.get(slug="notes-post")
    # ${token} is the script's variable, kept as written; the token itself is only on the account.
    assert probe.script["steps"][0]["headers"] == {"Authorization": "Bearer ${token}"}
    assert "notes-secret-token" not in str(probe.script)
    assert config_apply(config_load(SCRIPTED_CONFIG, source="notes.yaml")) == []


def test_a_bad_step_in_the_configuration_names_its_line(monkeypatch):
    from oncall.config import ConfigError, config_load

    monkeypatch.setenv("NOTES_TOKEN", "notes-secret-token")
    bad = SCRIPTED_CONFIG.replace("url: /api/notes\n", "url: api/notes\n").replace("${note_id}", "${nope}")
    with pytest.raises(ConfigError) as caught:
        config_load(bad, source="notes.yaml")
    problems = caught.value.problems
    assert any(p.startswith("notes.yaml:19:") and "probes[0].steps[0].url" in p and "neither a path" in p
               for p in problems), problems
    assert any("probes[0].cleanup[0]" in p and "unknown variable ${nope}" in p for p in problems), problems
    without_steps = SCRIPTED_CONFIG.split("    steps:")[0] + "components:\n  - {name: Notes, probes: [notes-post]}\n"
    with pytest.raises(ConfigError, match="needs steps"):
        config_load(without_steps, source="notes.yaml")
    on_mastodon = SCRIPTED_CONFIG.replace("kind: http", "kind: mastodon")
    with pytest.raises(ConfigError, match="steps are for platforms of kind http"):
        config_load(on_mastodon, source="notes.yaml")


FLOW = {
    "steps": [
        {"name": "create", "method": "POST", "url": "/api/v1/statuses",
         "headers": {"Authorization": "Bearer ${token}"}, "json": {"status": "flow ${run_key}"},
         "extract": {"status_id": "$.id"}},
        {"name": "read back", "url": "/api/v1/statuses/${status_id}", "headers": {"Authorization": "Bearer ${token}"},
         "expect": {"json": {"$.id": "${status_id}"}}},
        {"name": "delete", "method": "DELETE", "url": "/api/v1/statuses/${status_id}",
         "headers": {"Authorization": "Bearer ${token}"}},
    ],
    # If the flow stops before its own delete, cleanup removes the post (404 once it is gone).
    "cleanup": [{"method": "DELETE", "url": "/api/v1/statuses/${status_id}",
                 "headers": {"Authorization": "Bearer ${token}"}}],
}


@pytest.mark.parametrize("broken, change, failure_class", [
    (None, lambda s: None, ""),
    ("create", lambda s: s["steps"][0]["json"].update(status=""), "rejected"),  # 422: blank text
    ("read back", lambda s: s["steps"][1]["headers"].update(Authorization="Bearer ${token}-x"), "auth"),
    ("read back", lambda s: s["steps"][1]["expect"]["json"].update({"$.visibility": "direct"}), "unexpected"),
    ("delete", lambda s: s["steps"][2].update(url="/api/v1/statuses/${status_id}9"), "rejected"),  # 404
    ("delete", lambda s: s["steps"][2].update(expect={"status": 204}), "unexpected"),  # 200 is not 204
])
@pytest.mark.django_db(transaction=True)
def test_a_create_read_delete_flow_reports_the_step_broken_and_its_class(http_platform, locations, sandbox, broken,
                                                                         change, failure_class):
    script = copy.deepcopy(FLOW)
    change(script)
    result = run(scripted(http_platform, locations, script))
    assert result.failure_class == failure_class, result.error
    names = [s["name"] for s in result.steps]
    if broken:
        assert names[-1] == broken  # the flow stopped at the broken step
        # A refused step shows as failed; a wrong answer to a step that succeeded over HTTP does not.
        assert result.steps[-1]["ok"] is (failure_class == "unexpected")
    else:
        assert names == ["create", "read back", "delete"] and all(s["ok"] for s in result.steps)
    assert sandbox.leftovers() == 0, sandbox.artifacts()
