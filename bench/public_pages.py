"""Public pages against the length of history: queries, render time and bytes of each public URL
with one day, 90 days and a year of history (uncached, then served from the cache). Prints a table.

    .venv/bin/python bench/public_pages.py [--components 6] [--repeat 20] [--days 1,90,365]
        [--url / --url /api/v2/summary.json] [--database-url postgres://…/scratch] [--json]

By default on a throwaway SQLite database; --database-url names a scratch database instead (it is
emptied: `make bench` passes a private PostgreSQL one). With --json it prints one JSON object.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=6, help="components on the page (the demo has 6)")
    parser.add_argument("--repeat", type=int, default=20, help="renders per URL and history length")
    parser.add_argument("--days", default="1,90,365", help="history lengths in days, comma-separated")
    parser.add_argument("--url", action="append", help="only this URL (repeatable; <incident> and <component> "
                                                        "stand for an id); default: every public URL")
    parser.add_argument("--database-url", help="a scratch database to use (emptied) instead of SQLite")
    parser.add_argument("--json", action="store_true", help="print the results as JSON, not a table")
    args = parser.parse_args()
    os.environ["VIGIE_DATA_DIR"] = tempfile.mkdtemp(prefix="vigie-bench-")
    atexit.register(shutil.rmtree, os.environ["VIGIE_DATA_DIR"], ignore_errors=True)
    for name in ("DATABASE_URL", "VIGIE_CACHE_URL"):
        os.environ.pop(name, None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
    os.environ["VIGIE_ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from probes.models import Component, Incident, Probe
    from probes.simulation import demo_layout, history_fill, wipe

    def layout(now):
        wipe()
        demo_layout(locations=["atlanta", "sacramento"], created_at=now - timedelta(days=400))
        platform_probe = Probe.objects.first()
        for i in range(args.components - Component.objects.count()):
            Component.objects.create(name=f"Extra {i}", position=10 + i).probes.add(platform_probe)

    client = Client()

    def measure(url: str, cached: bool) -> tuple[int, float, int]:
        settings.VIGIE_PUBLIC_CACHE_SECONDS = 300 if cached else 0
        cache.clear()
        client.get(url)  # warm the code paths (and the cache when on)
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        queries = len(captured)  # now: the next request empties the log the context reads from
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - began) * 1000)
        return queries, statistics.median(times), len(response.content)

    rows = []
    now = timezone.now()
    for days in [int(d) for d in args.days.split(",")]:
        layout(now)
        history_fill(days=days, now=now, seed=days)
        incident = Incident.objects.order_by("-started_at").first()
        component = Component.objects.first()
        urls = args.url or ["/", "/fr/", "/api/v2/summary.json", "/api/v2/incidents.json", "/history.atom",
                            "/incidents/<incident>", "/components/<component>", "/history", "/badges/uptime.svg"]
        urls = [u.replace("<component>", component.public_id) for u in urls]
        urls = [u.replace("<incident>", incident.public_id) if incident else u for u in urls if incident or
                "<incident>" not in u]
        for url in urls:
            queries, median_ms, size = measure(url, cached=False)
            _, cached_ms, _ = measure(url, cached=True)
            label = url.replace(component.public_id, "<id>")
            if incident:
                label = label.replace(incident.public_id, "<id>")
            rows.append((label,
                         days, Incident.objects.count(), queries, median_ms, cached_ms, size))
    if args.json:
        print(json.dumps({"components": args.components, "repeat": args.repeat,
                          "database": connection.vendor, "rows": [
                              {"url": url, "days": days, "incidents": incidents, "queries": queries,
                               "render_ms": median_ms, "cached_ms": cached_ms, "bytes": size}
                              for url, days, incidents, queries, median_ms, cached_ms, size in rows]}))
        return
    print(f"{'url':<26} {'history':>8} {'incidents':>9} {'queries':>7} {'render ms':>9} {'cached ms':>9} {'bytes':>8}")
    for url, days, incidents, queries, median_ms, cached_ms, size in rows:
        print(f"{url:<26} {days:>6} d {incidents:>9} {queries:>7} {median_ms:>9.1f} {cached_ms:>9.2f} {size:>8}")
    print(f"\n{args.components} components, {connection.vendor}, median of {args.repeat} in-process renders (Django test client, "
          "no network); 'cached' is a hit in the file cache.")


if __name__ == "__main__":
    main()
