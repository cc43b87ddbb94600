"""Public pages against the length of history: queries, render time and bytes of each public URL
with one day, 90 days and a year of history (uncached, then served from the cache). Prints a table.

    .venv/bin/python bench/public_pages.py [--components 6] [--repeat 20] [--days 1,90,365]
        [--url / --url /api/v2/summary.json] [--database-url postgres://…/scratch] [--json]

By default on a throwaway SQLite database; --database-url names a scratch database instead (it is
emptied: `make bench` passes a private PostgreSQL one). With --json it prints one JSON object.

Each history is seeded by this process and measured by a fresh one, as a web worker renders: with
only what it loaded at start in memory (frozen for the garbage collector, as vigie/wsgi.py
does), not the hundreds of thousands of objects that seeding a year leaves behind, which made the
collector's passes, not the page, most of what a render in the seeding process cost.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
URLS = ["/", "/fr/", "/api/v2/summary.json", "/api/v2/incidents.json", "/history.atom", "/incidents/<incident>",
        "/components/<component>", "/history", "/badges/uptime.svg"]


def setup(database_url: str | None, data_dir: str) -> None:
    os.environ["VIGIE_DATA_DIR"] = data_dir
    for name in ("DATABASE_URL", "VIGIE_CACHE_URL"):
        os.environ.pop(name, None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigie.settings")
    os.environ["VIGIE_ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()


def seed(days: int, components: int) -> None:
    from django.utils import timezone

    from detection.models import Component
    from probes.models import Probe
    from detection.simulation import demo_layout, history_fill, wipe

    now = timezone.now()
    wipe()
    demo_layout(locations=["atlanta", "sacramento"], created_at=now - timedelta(days=400))
    platform_probe = Probe.objects.first()
    for i in range(components - Component.objects.count()):
        Component.objects.create(name=f"Extra {i}", position=10 + i).probes.add(platform_probe)
    history_fill(days=days, now=now, seed=days)


def measure_all(urls: list[str], repeat: int) -> list[dict]:
    """In this (fresh) process: each URL's queries, median render time uncached and cached, bytes."""
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from detection.models import Component, Incident
    from statuspage.encoding import variants

    client = Client()
    client.get("/")  # what a worker loads on its first request (the URLconf, templates)
    gc.collect()
    gc.freeze()
    incident = Incident.objects.order_by("-started_at").first()
    component = Component.objects.first()
    rows = []
    for url in urls:
        if "<incident>" in url and incident is None:
            continue
        real = url.replace("<component>", component.public_id)
        real = real.replace("<incident>", incident.public_id) if incident else real

        def measure(cached: bool) -> tuple[int, float, int]:
            settings.VIGIE_PUBLIC_CACHE_SECONDS = 300 if cached else 0
            cache.clear()
            client.get(real)  # warm the code paths (and the cache when on)
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                response = client.get(real)
            queries = len(captured)  # now: the next request empties the log the context reads from
            times, cpu = [], []
            for _ in range(repeat):
                began, began_cpu = time.perf_counter(), time.process_time()
                client.get(real)
                times.append((time.perf_counter() - began) * 1000)
                cpu.append((time.process_time() - began_cpu) * 1000)
            return queries, statistics.median(times), min(times), len(response.content), statistics.median(cpu)

        # CPU time of this process beside the wall time: on a shared machine the wall time of a
        # render measured minutes after another (each history is seeded in between) moves with
        # the neighbours' load by 3x; the CPU it took moves far less (the database's own time is
        # in neither process's CPU, and the same 13 queries run whatever the history: tested).
        queries, median_ms, min_ms, size, cpu_ms = measure(cached=False)
        _, cached_ms, _, _, _ = measure(cached=True)
        label = real.replace(component.public_id, "<id>")
        if incident:
            label = label.replace(incident.public_id, "<id>")
        encoded = variants(client.get(real).content, "text/html")  # what the cache keeps (statuspage/encoding.py)
        rows.append({"url": label, "incidents": Incident.objects.count(), "queries": queries, "render_ms": median_ms, "render_cpu_ms": cpu_ms,
                     "render_min_ms": min_ms, "cached_ms": cached_ms, "bytes": size,
                     "br_bytes": len(encoded.get("br", b"")) or size, "gzip_bytes": len(encoded.get("gzip", b"")) or size})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=6, help="components on the page (the demo has 6)")
    parser.add_argument("--repeat", type=int, default=20, help="renders per URL and history length")
    parser.add_argument("--days", default="1,90,365", help="history lengths in days, comma-separated")
    parser.add_argument("--url", action="append", help="only this URL (repeatable; <incident> and <component> "
                                                        "stand for an id); default: every public URL")
    parser.add_argument("--database-url", help="a scratch database to use (emptied) instead of SQLite")
    parser.add_argument("--json", action="store_true", help="print the results as JSON, not a table")
    parser.add_argument("--measure-in", metavar="DATA_DIR", help=argparse.SUPPRESS)  # the fresh process
    args = parser.parse_args()
    urls = args.url or URLS
    if args.measure_in:
        setup(args.database_url, args.measure_in)
        print(json.dumps(measure_all(urls, args.repeat)))
        return
    data_dir = tempfile.mkdtemp(prefix="vigie-bench-")
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    setup(args.database_url, data_dir)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    rows = []
    for days in [int(d) for d in args.days.split(",")]:
        seed(days, args.components)
        if connection.vendor == "postgresql":
            # As a database in service is: its statistics up to date, and no autovacuum of what
            # seeding (and wiping the previous history) left running under the measurement, nor
            # the checkpoint writing out a year's seeding (the year's renders were measured
            # beside it, up to 1.5x slower than the same code's in the next run).
            connection.ensure_connection()
            connection.connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
                cursor.execute("CHECKPOINT")
        connection.close()
        command = [sys.executable, __file__, "--measure-in", data_dir, "--repeat", str(args.repeat)]
        command += [part for url in urls for part in ("--url", url)]
        if args.database_url:
            command += ["--database-url", args.database_url]
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"measuring {days} days of history failed:\n{out.stderr[-3000:]}")
        rows += [{**row, "days": days} for row in json.loads(out.stdout.strip().splitlines()[-1])]
    if args.json:
        print(json.dumps({"components": args.components, "repeat": args.repeat, "database": connection.vendor,
                          "rows": rows}))
        return
    print(f"{'url':<26} {'history':>8} {'incidents':>9} {'queries':>7} {'render ms':>9} {'fastest':>7} {'CPU ms':>7} "
          f"{'cached ms':>9} {'bytes':>8} {'br':>7} {'gzip':>7}")
    for row in rows:
        print(f"{row['url']:<26} {row['days']:>6} d {row['incidents']:>9} {row['queries']:>7} {row['render_ms']:>9.1f} "
              f"{row['render_min_ms']:>7.1f} {row['render_cpu_ms']:>7.1f} {row['cached_ms']:>9.2f} {row['bytes']:>8} "
              f"{row['br_bytes']:>7} {row['gzip_bytes']:>7}")
    print(f"\n{args.components} components, {connection.vendor}, median and fastest of {args.repeat} renders in a fresh "
          "process (Django test client, no network); 'cached' is a hit in the file cache.")


if __name__ == "__main__":
    main()
