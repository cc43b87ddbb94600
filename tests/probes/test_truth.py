"""Truth against servers that answer like real ones (issue 16): asynchronous effects are awaited,
artifacts are recorded before any check, the failure class follows the evidence. Real HTTP to the
sandbox in Takahē compat mode."""
from __future__ import annotations

import threading
import uuid

import pytest
import requests
from django.utils import timezone

from probes.models import Account, Artifact, Platform, ProbeLocation, Run
from probes.runner import run_execute
from sandbox.config import SandboxConfig
from sandbox.server import make_server
from tests.conftest import CONTROL_TOKEN, PARTNER_TOKEN, PROBER_TOKEN, LiveSandbox, make_probe


@pytest.fixture(scope="module")
def takahe_server():
    config = SandboxConfig(prober_token=PROBER_TOKEN, partner_token=PARTNER_TOKEN, control_token=CONTROL_TOKEN,
                           compat="takahe")
    server = make_server("127.0.0.1", 0, config=config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def takahe(takahe_server):
    live = LiveSandbox(takahe_server)
    live.control("POST", "/_sandbox/reset")
    yield live
    live.control("POST", "/_sandbox/reset")


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
