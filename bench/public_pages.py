"""Public pages against the length of history: queries, render time and bytes of each public URL
with one day, 90 days and a year of history (uncached, then served from the cache). Prints a table.

    .venv/bin/python bench/public_pages.py [--components 6] [--repeat 20] [--days 1,90,365]
        [--url / --url /api/v2/summary.json] [--database-url postgres://…/scratch] [--json]

By default on throwaway SQLite databases; with --database-url, on PostgreSQL: a database per
history, named after the one given (`scratch_1d`, `scratch_365d`: created, then dropped at the
end; the one given is left alone). With --json it prints one JSON object.

Each history is seeded into its own database by this process, then every history is measured at
once, in turns: a fresh process per history, as a web worker renders (with only what it loaded at
start in memory, frozen for the garbage collector as vigie/wsgi.py does, not the hundreds of
thousands of objects that seeding a year leaves behind), each rendering the URL once per round,
the histories' order alternating from round to round. A render of a year and a render of a day
are then milliseconds apart, so what the neighbours' load does to the machine falls on both:
measured one after the other, minutes apart (each history seeded in between), the same code's
ratio moved between 1.0x and 2.3x from one run to the next (docs/performance.md).
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
from urllib.parse import urlsplit

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


def serve(urls: list[str]) -> None:
    """In this (fresh) process, one history's database: answer the parent's requests, one JSON line
    each on stdin — {"url": …, "op": "render" | "cached" | "describe"} — with one JSON line on stdout."""
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from detection.models import Component, Incident
    from statuspage.encoding import variants

    client = Client()
    client.get("/")  # what a worker loads on its first request (the URLconf, templates)
    incident = Incident.objects.order_by("-started_at").first()
    component = Component.objects.first()
    real = {}
    for url in urls:
        if "<incident>" in url and incident is None:
            continue
        address = url.replace("<component>", component.public_id)
        real[url] = address.replace("<incident>", incident.public_id) if incident else address
        for cached in (False, True):  # warm the code paths of each URL, both ways
            settings.VIGIE_PUBLIC_CACHE_SECONDS = 300 if cached else 0
            cache.clear()
            client.get(real[url])
            client.get(real[url])
    gc.collect()
    gc.freeze()
    print(json.dumps({"ready": sorted(real)}), flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        url, op = ask["url"], ask["op"]
        if url not in real:
            print(json.dumps({}), flush=True)
            continue
        if op == "describe":
            settings.VIGIE_PUBLIC_CACHE_SECONDS = 0
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                response = client.get(real[url])
            encoded = variants(response.content, "text/html")  # what the cache keeps (statuspage/encoding.py)
            print(json.dumps({"queries": len(captured), "incidents": Incident.objects.count(),
                              "bytes": len(response.content), "br_bytes": len(encoded.get("br", b"")) or len(response.content),
                              "gzip_bytes": len(encoded.get("gzip", b"")) or len(response.content)}), flush=True)
            continue
        cached = op == "cached"
        if settings.VIGIE_PUBLIC_CACHE_SECONDS != (300 if cached else 0):
            settings.VIGIE_PUBLIC_CACHE_SECONDS = 300 if cached else 0
            cache.clear()
            client.get(real[url])  # fills the cache when on
        began, began_cpu = time.perf_counter(), time.process_time()
        client.get(real[url])
        # CPU time of this process beside the wall time: the database's own time is in neither
        # process's CPU, and the same queries run whatever the history (tested).
        print(json.dumps({"ms": (time.perf_counter() - began) * 1000,
                          "cpu_ms": (time.process_time() - began_cpu) * 1000}), flush=True)


class Renderer:
    """A fresh process rendering one history's pages on request (serve)."""

    def __init__(self, days: int, database_url: str | None, data_dir: str, urls: list[str]):
        self.days = days
        command = [sys.executable, __file__, "--measure-in", data_dir]
        command += [part for url in urls for part in ("--url", url)]
        if database_url:
            command += ["--database-url", database_url]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.urls = self._read()["ready"]

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            sys.exit(f"measuring {self.days} days of history failed (exit {self.process.returncode}): see above")
        return json.loads(line)

    def ask(self, url: str, op: str) -> dict:
        try:
            self.process.stdin.write(json.dumps({"url": url, "op": op}) + "\n")
            self.process.stdin.flush()
        except OSError:
            self.process.wait()
            sys.exit(f"measuring {self.days} days of history failed (exit {self.process.returncode}): see above")
        return self._read()

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass  # it died: what it printed is above
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure_all(renderers: list[Renderer], urls: list[str], repeat: int) -> list[dict]:
    """Each URL in every history, in turns: `repeat` rounds, each rendering it once per history (the
    histories' order reversed every other round), uncached then cached; medians per history."""
    rows = []
    for url in urls:
        present = [r for r in renderers if url in r.urls]
        if not present:
            continue
        figures = {}
        for op in ("render", "cached"):
            taken = {r.days: [] for r in present}
            for round_ in range(repeat):
                for renderer in (present if round_ % 2 == 0 else present[::-1]):
                    taken[renderer.days].append(renderer.ask(url, op))
            figures[op] = taken
        shortest = figures["render"][min(r.days for r in present)]
        for renderer in present:
            uncached = figures["render"][renderer.days]
            wall = [t["ms"] for t in uncached]
            cpu = [t["cpu_ms"] for t in uncached]
            label = url.replace("<component>", "<id>").replace("<incident>", "<id>")
            rows.append({"url": label, "days": renderer.days, **renderer.ask(url, "describe"),
                         "render_ms": statistics.median(wall), "render_min_ms": min(wall),
                         "render_cpu_ms": statistics.median(cpu),
                         # Each round's render against the shortest history's in the same round (the
                         # two ~0.1 s apart): the median of those ratios is what the neighbours'
                         # load, which moves a render by 2x from one second to the next, moves least.
                         "paired_ratio": statistics.median([t["ms"] / s["ms"] for t, s in zip(uncached, shortest)]),
                         "paired_cpu_ratio": statistics.median([t["cpu_ms"] / s["cpu_ms"]
                                                                for t, s in zip(uncached, shortest)]),
                         "cached_ms": statistics.median([t["ms"] for t in figures["cached"][renderer.days]])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=6, help="components on the page (the demo has 6)")
    parser.add_argument("--repeat", type=int, default=20, help="renders per URL and history length")
    parser.add_argument("--days", default="1,90,365", help="history lengths in days, comma-separated")
    parser.add_argument("--url", action="append", help="only this URL (repeatable; <incident> and <component> "
                                                        "stand for an id); default: every public URL")
    parser.add_argument("--database-url", help="PostgreSQL instead of SQLite: a database per history is created, "
                        "named after this one (NAME_1d, NAME_365d…), and dropped at the end")
    parser.add_argument("--json", action="store_true", help="print the results as JSON, not a table")
    parser.add_argument("--measure-in", metavar="DATA_DIR", help=argparse.SUPPRESS)  # a fresh process
    args = parser.parse_args()
    urls = args.url or URLS
    if args.measure_in:
        setup(args.database_url, args.measure_in)
        serve(urls)
        return
    histories = sorted({int(d) for d in args.days.split(",")})
    databases = []
    if args.database_url:
        from bench.services import PrivateDatabase, with_database

        server = with_database(args.database_url, "postgres")
        base = urlsplit(args.database_url).path.lstrip("/") or "vigie_pages"
        databases = [PrivateDatabase(server, f"{base}_{days}d") for days in histories]
        for database in databases:
            atexit.register(database.drop)  # after the data folders' removal: registered later, run first
    places = []
    for i, days in enumerate(histories):
        data_dir = tempfile.mkdtemp(prefix=f"vigie-bench-{days}d-")
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
        url = None
        if databases:
            databases[i].create()
            url = databases[i].url
        places.append((days, url, data_dir))
        # Each history seeded by a process of its own (Django is set up once per process).
        command = [sys.executable, __file__, "--seed-in", data_dir, "--days", str(days),
                   "--components", str(args.components)] + (["--database-url", url] if url else [])
        out = subprocess.run(command)
        if out.returncode != 0:
            sys.exit(f"seeding {days} days of history failed")
    renderers = []
    try:
        for days, url, data_dir in places:
            renderers.append(Renderer(days, url, data_dir, urls))
        rows = measure_all(renderers, urls, args.repeat)
    finally:
        for renderer in renderers:
            renderer.close()
    vendor = "postgresql" if databases else "sqlite"
    if args.json:
        print(json.dumps({"components": args.components, "repeat": args.repeat, "database": vendor,
                          "in_turns": True, "rows": rows}))
        return
    print(f"{'url':<26} {'history':>8} {'incidents':>9} {'queries':>7} {'render ms':>9} {'fastest':>7} {'CPU ms':>7} "
          f"{'paired':>6} {'CPU':>5} {'cached ms':>9} {'bytes':>8} {'br':>7} {'gzip':>7}")
    for row in rows:
        print(f"{row['url']:<26} {row['days']:>6} d {row['incidents']:>9} {row['queries']:>7} {row['render_ms']:>9.1f} "
              f"{row['render_min_ms']:>7.1f} {row['render_cpu_ms']:>7.1f} {row['paired_ratio']:>5.2f}x "
              f"{row['paired_cpu_ratio']:>4.2f}x {row['cached_ms']:>9.2f} {row['bytes']:>8} {row['br_bytes']:>7} "
              f"{row['gzip_bytes']:>7}")
    print(f"\n{args.components} components, {vendor}, median and fastest of {args.repeat} renders per history, "
          "the histories in turns (a fresh process each; Django test client, no network); 'paired': the median "
          "of each round's render time (and CPU) over the shortest history's in that round; 'cached' is a hit in "
          "the file cache.")


def seed_in(data_dir: str, database_url: str | None, days: int, components: int) -> None:
    """--seed-in: one history into its own database, left as a database in service is."""
    setup(database_url, data_dir)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    seed(days, components)
    if connection.vendor == "postgresql":
        # As a database in service is: its statistics up to date, and no autovacuum of what
        # seeding left running under the measurement, nor the checkpoint writing out a year's
        # seeding (the year's renders were measured beside it, up to 1.5x slower than the same
        # code's in the next run).
        connection.ensure_connection()
        connection.connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("CHECKPOINT")
    connection.close()


if __name__ == "__main__":
    if "--seed-in" in sys.argv:
        seeding = argparse.ArgumentParser()
        seeding.add_argument("--seed-in")
        seeding.add_argument("--days", type=int)
        seeding.add_argument("--components", type=int)
        seeding.add_argument("--database-url")
        given = seeding.parse_args()
        seed_in(given.seed_in, given.database_url, given.days, given.components)
    else:
        main()
