"""Acceptance soak of issue 16: many runs across every action against the sandbox (Takahē compat
mode) with random faults — read-only, server errors, dropped connections, quotas, lost deletes, a
stalled fan-out, over-long posts accepted, settle times too short (invariant failures) — and
worker kills (a run killed between creating its artifacts and cleaning them up), then the retries
and the sweep: zero artifacts may be left on the platform, and one repost target per account.

The logic is `soak()`; tests/probes/test_soak.py runs a small version with the suite. The 1,000:

    .venv/bin/python bench/soak.py                 # 1,000 runs: 1 min 32 s here, zero artifacts left
    .venv/bin/python bench/soak.py --runs 200 --seed 7

which runs that test with VIGIE_SOAK_RUNS and VIGIE_SOAK_SEED set (SQLite, one process).
"""
from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import timedelta

FAULTS = [("read_only", "*"), ("server_error", "*"), ("drop", "*"), ("quota_exceeded", "*"),
          ("delete_lost", "post"), ("delete_lost", "dm"), ("fanout_stalled", "*"), ("accept_overlong", "post"),
          ("server_error", "follow"), ("read_only", "repost")]


WRITERS = ("post", "repost", "follow", "dm", "delivery")


class Killed(BaseException):
    """The worker died mid-run: nothing after this point happens, the run is never recorded."""


def soak(*, sandbox, platform, runs: int, seed: int, say=print) -> dict:
    """Perform `runs` runs of the platform's placements, then let cleanup and the sweep finish;
    returns what happened. `sandbox`: tests.conftest.LiveSandbox."""
    from django.utils import timezone

    from probes import runner
    from probes.models import Artifact, Platform, ProbeLocation
    from probes.sweep import leftovers_sweep

    rng = random.Random(seed)
    placements = list(ProbeLocation.objects.filter(probe__platform=platform)
                      .select_related("probe__platform", "location").order_by("id"))
    outcomes: Counter = Counter()
    done = iteration = 0
    while done < runs:
        iteration += 1
        sandbox.clear_faults()
        for kind, action in rng.sample(FAULTS, rng.choice([0, 0, 1, 2])):
            sandbox.fault(kind, action)
        # Now and then a settle time shorter than the server's: follows judged wrong (invariant).
        Platform.objects.filter(id=platform.id).update(settle_s=rng.choice([1.5, 1.5, 1.5, 0.05]))
        if rng.random() < 0.2 or iteration % 8 == 2:  # a worker killed after the action, before its cleanup
            placement = rng.choice([p for p in placements if p.probe.action in WRITERS])
            placement.probe.platform.refresh_from_db()
            original = runner.artifact_cleanup

            def killed(*args, **kwargs):
                raise Killed

            runner.artifact_cleanup = killed
            try:
                runner._perform(placement=placement, accounts=list(platform.accounts.all()), run_key=str(uuid.uuid4()),
                                scheduled_for=timezone.now())
                outcomes["not killed (nothing to clean)"] += 1
            except Killed:
                outcomes["killed"] += 1
            finally:
                runner.artifact_cleanup = original
            done += 1
            continue
        batch = rng.sample(placements, min(len(placements), runs - done, rng.choice([1, 3, 5])))
        for run in runner.runs_execute([(p.id, str(uuid.uuid4()), timezone.now()) for p in batch]):
            outcomes[run.failure_class or "success"] += 1
        done += len(batch)
        if done % 100 < len(batch):
            say(f"{done} runs: {dict(outcomes)}")
    # The platform heals; the retries and the sweep finish the work.
    sandbox.clear_faults()
    for _ in range(10):
        Artifact.objects.filter(cleaned_at__isnull=True).update(next_attempt_at=timezone.now())
        runner.cleanup_pending(min_age=timedelta(0), limit=1000)
        found = leftovers_sweep(older_than=timedelta(0))
        outcomes["swept"] += found["found"]
        outcomes["resurrected"] += found["resurrected"]
        if not found["found"] and not Artifact.objects.filter(cleaned_at__isnull=True).exists():
            break
    return dict(outcomes)


if __name__ == "__main__":
    import argparse
    import os
    import subprocess
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "VIGIE_SOAK_RUNS": str(args.runs), "VIGIE_SOAK_SEED": str(args.seed)}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "VIGIE_CACHE_URL"):
        env.pop(name, None)
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-n", "0", "-q", "-s", "tests/probes/test_soak.py"],
                             cwd=root, env=env))
