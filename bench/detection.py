"""Detection quality: every scenario simulated through the real evaluation, and the flapping
scenario's false-incident rate over many random seeds. Prints a table.

    .venv/bin/python bench/detection.py [--seeds 50] [--scenario feb-2023] [--json]

With --json it prints one JSON object instead (what `make bench`, bench/run.py, reads).
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=50, help="random seeds for the flapping scenario (0: skip)")
    parser.add_argument("--scenario", action="append", help="only this scenario (repeatable; default: all)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON, not a table")
    args = parser.parse_args()
    os.environ["VIGIE_DATA_DIR"] = tempfile.mkdtemp(prefix="vigie-bench-")
    atexit.register(shutil.rmtree, os.environ["VIGIE_DATA_DIR"], ignore_errors=True)
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigie.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from detection.models import Incident
    from detection.scenarios import SCENARIOS
    from detection.simulation import demo_layout, simulate_scenario, wipe

    start = datetime(2026, 2, 8, 17, 0, tzinfo=timezone.utc)
    results: dict = {"scenarios": [], "flapping": None}
    show = (lambda *a, **k: None) if args.json else print
    show(f"{'scenario':<18} {'incidents':>9} {'impact':>8} {'MTTD s':>7} {'measured−injected s':>20} {'±s':>5}  title")
    for name, scenario in SCENARIOS.items():
        if args.scenario and name not in args.scenario:
            continue
        wipe()
        demo_layout(locations=["atlanta", "chicago", "sacramento"] if name == "regional" else ["atlanta", "sacramento"])
        began = time.perf_counter()
        times = simulate_scenario(scenario, start=start, interval_s=30, seed=1)
        elapsed = time.perf_counter() - began
        incidents = list(Incident.objects.all())
        results["scenarios"].append({
            "name": name, "simulate_s": elapsed, "interval_s": 30,
            "incidents": [{"title": i.title, "impact": i.effective_impact,
                           "time_to_detect_s": i.time_to_detect.total_seconds(),
                           "fault_to_detected_s": (i.detected_at - times["fault_from"]).total_seconds(),
                           "duration_error_s": ((i.duration.total_seconds() if i.duration else float("nan"))
                                                - (times["fault_until"] - times["fault_from"]).total_seconds()),
                           "uncertainty_s": i.duration_uncertainty_s} for i in incidents]})
        if not incidents:
            show(f"{name:<18} {0:>9} {'':>8} {'':>7} {'':>20} {'':>5}  (none)  [{elapsed:.1f} s to simulate]")
        for incident in incidents:
            injected = (times["fault_until"] - times["fault_from"]).total_seconds()
            error = incident.duration.total_seconds() - injected if incident.duration else float("nan")
            show(f"{name:<18} {len(incidents):>9} {incident.effective_impact:>8} "
                  f"{incident.time_to_detect.total_seconds():>7.1f} {error:>20.1f} "
                  f"{incident.duration_uncertainty_s:>5.0f}  {incident.title}")
    false = 0
    if args.json:
        print(json.dumps(results))
        return
    if not args.seeds:
        return
    for seed in range(args.seeds):
        wipe()
        demo_layout(locations=["atlanta", "sacramento"])
        simulate_scenario(SCENARIOS["flapping"], start=start, interval_s=30, seed=seed)
        false += Incident.objects.exists()
    print(f"\nflapping (1 run in 4 fails at random, 15 min, 2 locations): incidents in {false} of {args.seeds} "
          f"seeds ({100 * false / args.seeds:.0f} %)")


if __name__ == "__main__":
    main()
