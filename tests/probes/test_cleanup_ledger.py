"""After hundreds of runs with faults coming and going, nothing made by a probe stays behind."""
from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from probes.models import Artifact, ProbeLocation, Run
from probes.runner import cleanup_pending, run_execute
from tests.conftest import make_probe

WRITE_ACTIONS = ["post", "repost", "follow", "dm"]
FAULTS = ["read_only", "server_error", "drop", "quota_exceeded", "slow:50"]


@pytest.mark.django_db(transaction=True)
def test_no_leftovers_after_two_hundred_runs_with_random_faults(platform, locations, sandbox):
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
        for i in range(200):
            placement = placements[i % len(placements)]
            run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
    finally:
        stop.set()
        thread.join()
        connection.close()
    sandbox.clear_faults()

    assert Run.objects.count() == 200
    assert Run.objects.filter(outcome="failure").exists() and Run.objects.filter(outcome="success").exists()
    # The retry pass (normally every minute) finishes what failed cleanups left.
    for _ in range(5):
        Artifact.objects.filter(cleaned_at__isnull=True).update(next_attempt_at=timezone.now())
        cleanup_pending(min_age=timedelta(0), limit=500)
    assert not Artifact.objects.filter(cleaned_at__isnull=True).exists()
    assert sandbox.leftovers() == 0, sandbox.artifacts()
