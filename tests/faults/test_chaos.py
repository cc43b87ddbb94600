"""The chaos run at the CI size (bench/chaos.py --scale 0.15, about 2.5 minutes): its own PostgreSQL
cluster and Redis, two locations, two schedulers, a worker SIGKILLed, PostgreSQL restarted with the
spool's disk full, Redis stopped, the leading scheduler SIGKILLed. Every row of its truth table must
be exact except those listed in KNOWN_OPEN, which docs/chaos.md explains (and which this test
reports, so that one becoming exact is seen and moved out of the list)."""
from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys

import pytest
from django.db import connection

from tests.faults.processes import ROOT

# Rows not exact yet, each explained in docs/chaos.md.
KNOWN_OPEN: set[str] = set()


def _can_run() -> str | None:
    if connection.vendor == "postgresql":
        return "the chaos run brings its own PostgreSQL and Redis: it runs once, on the SQLite leg"
    # CI runs the chaos as a step of its own, after the two test legs and alone on the machine
    # (`make chaos CHAOS_ARGS="--scale 0.15"` in .ci/run): bench/chaos.py exits 1 unless every row is
    # exact. Here it is the same run from pytest, for whoever wants it (VIGIE_CHAOS=1), and not a
    # second run in CI: beside the suite's other worker its timing-sensitive rows measure the load.
    if os.environ.get("VIGIE_CHAOS") != "1":
        return "CI runs the chaos as its own step (make chaos, .ci/run); here only with VIGIE_CHAOS=1"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL server binaries are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root with no postgres user to run PostgreSQL as"
    return None


@pytest.mark.timeout(900)
def test_the_chaos_run_at_ci_size_tells_the_truth(tmp_path):
    reason = _can_run()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "bench/chaos.py", "--scale", "0.15", "--json", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=840)
    print(result.stdout[-6000:])
    assert out.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(out.read_text())
    wrong = [row for row in rows if not row["exact"] and row["row"] not in KNOWN_OPEN]
    assert wrong == []
    fixed = [row["row"] for row in rows if row["exact"] and row["row"] in KNOWN_OPEN]
    if fixed:
        print(f"now exact, take out of KNOWN_OPEN: {fixed}")
