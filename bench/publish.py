"""`manage.py publish` against a long incident history: a full publish, then incremental ones.
Seeds N resolved incidents (3 updates each) and prints a table: seconds and pages rendered for a
first publish into an empty folder, a publish with nothing changed, after one update to an old
incident, after a component was renamed, and with --full.

    .venv/bin/python bench/publish.py [--incidents 5000] [--database-url postgres://…/scratch]

By default on a throwaway SQLite database in a temporary VIGIE_DATA_DIR; --database-url names a
scratch database instead (it is emptied). The public cache is off (VIGIE_PUBLIC_CACHE_SECONDS=0),
so every page asked for is rendered, as after a change, which makes every cached page old.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

UPDATES = (("investigating", "Posting fails with **HTTP 429** from one location; we are looking into it."),
           ("identified", "The platform's daily write limit was reached.\n\n- posts refused\n- reads fine"),
           ("resolved", "Posting works again from every location."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=5000, help="resolved incidents to seed (one every 8 h)")
    parser.add_argument("--database-url", help="a scratch database to use (emptied) instead of SQLite")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="vigie-bench-publish-")
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    os.environ["VIGIE_DATA_DIR"] = data_dir
    for name in ("DATABASE_URL", "VIGIE_CACHE_URL", "VIGIE_PUBLISH_DIR"):
        os.environ.pop(name, None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    os.environ["VIGIE_PUBLIC_CACHE_SECONDS"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigie.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from detection.incidents import incident_add_update
    from detection.models import Component, Incident, IncidentComponent, IncidentUpdate
    from detection.simulation import demo_layout, wipe
    from statuspage.publish import page_inputs, site_publish, site_urls

    call_command("migrate", verbosity=0)
    wipe()
    now = timezone.now()
    demo_layout(locations=["atlanta", "sacramento"], created_at=now - timedelta(days=400))
    components = list(Component.objects.all())
    began = time.monotonic()
    incidents = []
    for i in range(args.incidents):
        start = now - timedelta(hours=8 * (i + 1))
        incidents.append(Incident(title=f"Posting refused ({i})", status="resolved", impact="major", started_at=start,
                                  detected_at=start + timedelta(minutes=2), resolved_at=start + timedelta(minutes=35),
                                  started_uncertainty_s=30, resolved_uncertainty_s=30, created_at=start,
                                  updated_at=start + timedelta(minutes=35),
                                  evidence={"failure_classes": {"quota_exceeded": 4}, "status_code": 429,
                                            "locations": ["atlanta", "sacramento"]}))
    Incident.objects.bulk_create(incidents, batch_size=500)
    incidents = list(Incident.objects.order_by("id"))
    IncidentUpdate.objects.bulk_create(
        [IncidentUpdate(incident=incident, status=status, body=body, created_at=incident.started_at + timedelta(minutes=k * 15))
         for incident in incidents for k, (status, body) in enumerate(UPDATES)], batch_size=1000)
    IncidentComponent.objects.bulk_create(
        [IncidentComponent(incident=incident, component=components[(incident.id + k) % len(components)],
                           worst_status="major_outage", last_status="operational")
         for incident in incidents for k in range(1 + incident.id % 2)], batch_size=1000)
    seeded_s = time.monotonic() - began

    out = Path(data_dir) / "site"
    total = len(site_urls())
    rows = []

    def measure(label: str, **kwargs) -> None:
        began = time.monotonic()
        written = site_publish(out=out, **kwargs)
        rows.append((label, time.monotonic() - began, len(written)))

    measure("first publish (empty folder)")
    measure("again, nothing changed")
    incident_add_update(incident=incidents[len(incidents) // 2], status="postmortem", body="What we learnt.",
                        automatic=False)
    measure("after one update to an old incident")
    Component.objects.filter(id=components[0].id).update(name="Posting (v2)")
    measure("after a component was renamed")
    measure("--full", full=True)

    began = time.monotonic()
    kept = len(page_inputs(timezone.now()))
    digest_s = time.monotonic() - began
    print(f"{'publish':<38} {'seconds':>8} {'pages rendered':>15}")
    for label, seconds, rendered in rows:
        print(f"{label:<38} {seconds:>8.2f} {rendered:>8,} / {total:,}")
    print(f"\n{args.incidents:,} resolved incidents with {len(UPDATES)} updates each over "
          f"{args.incidents * 8 / 24 / 365:.1f} years, {len(components)} components, {connection.vendor} "
          f"(seeded in {seeded_s:.1f} s); public cache off, one process, Django test client.\n"
          f"Digests of the {kept:,} pages that can be kept: {digest_s:.2f} s (computed twice per publish).")


if __name__ == "__main__":
    main()
