"""Detection quality: every scenario simulated through the real evaluation, and the flapping
scenario's false-incident rate over many random seeds. Prints a table.

    .venv/bin/python bench/detection.py [--seeds 50]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=50, help="random seeds for the flapping scenario")
    args = parser.parse_args()
    os.environ["VIGIE_DATA_DIR"] = tempfile.mkdtemp(prefix="vigie-bench-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from probes.models import Incident
    from probes.scenarios import SCENARIOS
    from probes.simulation import demo_layout, simulate_scenario, wipe

    start = datetime(2026, 2, 8, 17, 0, tzinfo=timezone.utc)
    print(f"{'scenario':<18} {'incidents':>9} {'impact':>8} {'MTTD s':>7} {'measured−injected s':>20} {'±s':>5}  title")
    for name, scenario in SCENARIOS.items():
        wipe()
        demo_layout(locations=["atlanta", "chicago", "sacramento"] if name == "regional" else ["atlanta", "sacramento"])
        began = time.perf_counter()
        times = simulate_scenario(scenario, start=start, interval_s=30, seed=1)
        elapsed = time.perf_counter() - began
        incidents = list(Incident.objects.all())
        if not incidents:
            print(f"{name:<18} {0:>9} {'':>8} {'':>7} {'':>20} {'':>5}  (none)  [{elapsed:.1f} s to simulate]")
        for incident in incidents:
            injected = (times["fault_until"] - times["fault_from"]).total_seconds()
            error = incident.duration.total_seconds() - injected if incident.duration else float("nan")
            print(f"{name:<18} {len(incidents):>9} {incident.effective_impact:>8} "
                  f"{incident.time_to_detect.total_seconds():>7.1f} {error:>20.1f} "
                  f"{incident.duration_uncertainty_s:>5.0f}  {incident.title}")
    false = 0
    for seed in range(args.seeds):
        wipe()
        demo_layout(locations=["atlanta", "sacramento"])
        simulate_scenario(SCENARIOS["flapping"], start=start, interval_s=30, seed=seed)
        false += Incident.objects.exists()
    print(f"\nflapping (1 run in 4 fails at random, 15 min, 2 locations): incidents in {false} of {args.seeds} "
          f"seeds ({100 * false / args.seeds:.0f} %)")


if __name__ == "__main__":
    main()
