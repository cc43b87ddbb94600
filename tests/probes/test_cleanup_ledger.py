"""After a thousand runs with faults coming and going, nothing made by a probe stays behind."""
from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.utils import timezone

from platforms.adapters.base import CreatedArtifact, RunContext
from platforms.http import HttpSeam
from probes.models import Account, Artifact, ProbeLocation, Run
from probes.runner import _adapter, _credentials, artifact_cleanup, artifact_record, cleanup_pending, run_execute
from tests.conftest import PROBER_TOKEN, make_probe

WRITE_ACTIONS = ["post", "repost", "follow", "dm"]
FAULTS = ["read_only", "server_error", "drop", "quota_exceeded", "slow:50"]


@pytest.mark.django_db(transaction=True)
def test_no_leftovers_after_a_thousand_runs_with_random_faults(platform, locations, sandbox):
    probes = [make_probe(platform, action, locations, timeout_s=2) for action in WRITE_ACTIONS + ["read"]]
    placements = list(ProbeLocation.objects.filter(probe__in=probes))
    rng = random.Random(20230208)
    stop = threading.Event()

    def chaos():
        # Faults flip while runs are under way, so some land between a create and its cleanup.
        while not stop.is_set():
            if rng.random() < 0.5:
                sandbox.clear_faults()
            else:
                sandbox.fault(rng.choice(FAULTS), rng.choice(WRITE_ACTIONS + ["*"]),
                              location=rng.choice([None, "sacramento", "atlanta"]))
            stop.wait(rng.uniform(0.005, 0.04))

    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    try:
        for i in range(1000):
            placement = placements[i % len(placements)]
            run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
    finally:
        stop.set()
        thread.join()
        connection.close()
    sandbox.clear_faults()

    assert Run.objects.count() == 1000
    assert Run.objects.filter(outcome="failure").exists() and Run.objects.filter(outcome="success").exists()
    # The retry pass (normally every minute) finishes what failed cleanups left.
    for _ in range(5):
        Artifact.objects.filter(cleaned_at__isnull=True).update(next_attempt_at=timezone.now())
        cleanup_pending(min_age=timedelta(0), limit=500)
    assert not Artifact.objects.filter(cleaned_at__isnull=True).exists()
    assert sandbox.leftovers() == 0, sandbox.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_follow_made_again_after_an_earlier_cleanup_is_cleaned_even_when_its_undo_fails(platform, locations, sandbox):
    """A follow has the same remote id every run, so its ledger row outlives the run that made it.
    The row of an earlier, cleaned follow must go back to "to be cleaned" when the follow is made
    again; before, a failed undo of the second follow left it on the platform for good."""
    probe = make_probe(platform, "follow", locations[:1])
    placement = ProbeLocation.objects.get(probe=probe)
    first = run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
    assert first.outcome == "success" and first.cleanup == Run.Cleanup.DONE
    earlier = Artifact.objects.get()
    assert earlier.cleaned_at is not None

    # A second run follows again (for real), is put on record, and its unfollow is refused.
    partner_id = Account.objects.get(role="partner").remote_id
    followed = requests.post(f"{sandbox.url}/api/v1/accounts/{partner_id}/follow", timeout=5,
                             headers={"Authorization": f"Bearer {PROBER_TOKEN}"})
    assert followed.status_code == 200 and followed.json()["following"] is True
    second_key = str(uuid.uuid4())
    prober = Account.objects.get(role="prober")
    artifact = CreatedArtifact(Artifact.Kind.FOLLOW, partner_id, "prober")
    row = artifact_record(run_key=second_key, probe_id=probe.id, account=prober, artifact=artifact)
    assert row.id == earlier.id and Artifact.objects.get().cleaned_at is None

    accounts = _credentials(platform)
    ctx = RunContext(http=HttpSeam(user_agent="test", deadline=time.monotonic() + 5, max_bytes=10**6),
                     record_artifact=lambda a: None, run_key=second_key)
    adapter = _adapter(platform, accounts, ctx)
    sandbox.fault("read_only", "follow")
    assert artifact_cleanup(row, adapter=adapter, artifact=artifact, secrets=[]) is False
    # The first run's undo arriving late does not mark the row cleaned: the second run owns it.
    sandbox.clear_faults()
    stale = Artifact(id=earlier.id, run_key=first.key, attempts=0)
    assert artifact_cleanup(stale, adapter=adapter, artifact=artifact, secrets=[]) is True
    pending = Artifact.objects.get()
    assert pending.cleaned_at is None and pending.attempts == 1 and "503" in pending.last_error

    Artifact.objects.update(next_attempt_at=timezone.now())
    assert cleanup_pending(min_age=timedelta(0)) == 1
    assert Artifact.objects.get().cleaned_at is not None
    assert sandbox.leftovers() == 0, sandbox.artifacts()
