"""`make bench`: Vigie under load on this machine, in one command, printing one table.

Starts what it needs — a private PostgreSQL database and Redis db numbers on the local servers
(started if down), the sandbox platform, gunicorn, nginx serving `manage.py publish`'s copy through
docs/nginx.conf, the scheduler and Celery workers — seeds 50 components with a year of status
history and 10 million runs, then measures, with bounded loads on 127.0.0.1:

  1. public reads: `/` and `/api/v2/summary.json` through gunicorn, and the published copy through
     nginx, beside nginx serving plain files of the same sizes (wrk);
  2. the probe engine: runs/s with the sandbox answering in 100 ms, dispatch lateness, CPU per run
     over every Vigie process, worker memory — for a few worker pools;
  3. history: render time and queries of `/` and summary.json with 1 vs 365 days (public_pages.py);
  4. detection latency of the feb-2023 scenario (detection.py);
  5. idle cost and memory of a whole install, probes paused: the large layout and the small one (cost.py);
  6. cost as the work grows: 10, 100 and 1,000 probes with 1 and 2 location worker processes (cost.py).

Everything it started is stopped and the database dropped at the end, on Ctrl-C or an error too.
The targets of issue 7 are printed beside the figures; nothing asserts them.

    make bench                              # the full run (10 M runs, 64 connections): ~15 minutes
    make bench BENCH_ARGS="--quick"         # 100 k runs, 4 connections, short windows: a smoke run
    .venv/bin/python bench/run.py --help    # every knob
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone as dt_timezone
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import services  # noqa: E402
from bench.report import num, report  # noqa: E402
from bench.services import (  # noqa: E402
    MANAGE, PYTHON, PrivateDatabase, Processes, WrkResult, free_port, log, wait_for_port, wrk,
)



def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 100k runs, wrk -t1 -c4 -d2s, 20 runs/s offered, short windows")
    parser.add_argument("--runs", type=int, help="raw runs to seed (default 10,000,000; --quick 100,000)")
    parser.add_argument("--components", type=int, default=50)
    parser.add_argument("--platforms", type=int, default=10,
                        help="platforms the components and probes are spread over (evaluation locks per platform)")
    parser.add_argument("--history-days", type=int, default=365)
    parser.add_argument("--connections", type=int, help="wrk connections (default 64; --quick 4)")
    parser.add_argument("--wrk-threads", type=int, help="wrk threads (default 2; --quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 5; --quick 2)")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    # sync × 4 beat gthread 4 × 8 here (2 cores, 64 connections): 1,757 vs 1,558 req/s on /, p99 45 vs 556 ms.
    parser.add_argument("--gunicorn-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--gunicorn-threads", type=int, default=8, help="threads per gthread worker")
    parser.add_argument("--servers", default="gunicorn-gthread,granian",
                        help="WSGI servers compared with the gunicorn above on the cache-hit path (brotli), "
                             "comma-separated: gunicorn-gthread, granian (if installed); '' for none")
    parser.add_argument("--nginx-workers", type=int, default=2)
    parser.add_argument("--engine-rate", type=float, help="runs/s offered to the engine (default 320; --quick 20)")
    parser.add_argument("--engine-pools",
                        help="worker pools to try, comma-separated pool:concurrency per location worker "
                             "(default prefork:4,threads:8,threads:16,threads:32; --quick threads:4)")
    parser.add_argument("--engine-warmup", type=float, help="seconds before measuring (default 15; --quick 8)")
    parser.add_argument("--engine-window", type=float, help="seconds measured (default 30; --quick 8)")
    parser.add_argument("--sandbox-delay-ms", type=int, default=100)
    parser.add_argument("--dispatch-every", type=int, default=1,
                        help="VIGIE_DISPATCH_EVERY for the engine (default 1 s; Vigie's default is 2)")
    parser.add_argument("--idle-window", type=float, help="seconds of idle CPU measured per layout (default 120; --quick 30)")
    parser.add_argument("--idle-settle", type=float, help="seconds after start before measuring idle (default 30; --quick 15)")
    parser.add_argument("--idle-layouts", default="large,small", help="layouts the idle section measures (default large,small)")
    parser.add_argument("--cost-probes", default="10,100,1000", help="probe counts of the cost-growth section")
    parser.add_argument("--cost-workers", default="1,2", help="location worker processes of the cost-growth section")
    parser.add_argument("--cost-warmup", type=float, help="seconds before measuring a cost trial (default 15; --quick 10)")
    parser.add_argument("--cost-window", type=float, help="seconds measured per cost trial (default 30; --quick 15)")
    parser.add_argument("--render-repeat", type=int, help="renders per URL in section 3 (default 60; --quick 5)")
    parser.add_argument("--skip", default="",
                        help="sections to skip, comma-separated: reads,engine,idle,cost,history,detection")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="the PostgreSQL server (a private database is created on it and dropped after)")
    parser.add_argument("--db-name", default="vigie_bench")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument("--broker-db", type=int, default=13, help="Redis db number of the broker (flushed)")
    parser.add_argument("--cache-db", type=int, default=12, help="Redis db number of the public cache (flushed)")
    parser.add_argument("--json-out", help="also write every figure to this JSON file")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the logs of every process started to DIR")
    parser.add_argument("--profile", metavar="DIR", help="sample gunicorn and a location worker with py-spy "
                                                         "(collapsed stacks into DIR; py-spy must be installed)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="the py-spy binary for --profile")
    args = parser.parse_args()
    quick = args.quick
    defaults = {"runs": (10_000_000, 100_000), "connections": (64, 4), "wrk_threads": (2, 1), "seconds": (5, 2),
                "engine_rate": (320, 20), "engine_pools": ("prefork:4,threads:8,threads:16,threads:32", "threads:4"),
                "engine_warmup": (15, 8), "engine_window": (30, 8), "render_repeat": (60, 5),
                "idle_window": (120, 30), "idle_settle": (30, 15), "cost_warmup": (15, 10), "cost_window": (30, 15)}
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="vigie-bench-"))
        self.work.chmod(0o755)  # nginx's workers (user nobody) read the published copy under it
        self.processes = Processes(logs=self.work)
        self.started_servers: list[str] = []
        self.database = PrivateDatabase(args.pg_url, args.db_name)
        self.pages_database = PrivateDatabase(args.pg_url, args.db_name + "_pages")
        self.broker_url = f"{args.redis_url.rstrip('/')}/{args.broker_db}"
        self.cache_url = f"{args.redis_url.rstrip('/')}/{args.cache_db}"
        self.results: dict = {"started": datetime.now(dt_timezone.utc).isoformat(timespec="seconds")}
        self.ports = {name: free_port() for name in ("web", "sandbox", "nginx", "static")}
        self.tokens = {name: secrets.token_urlsafe(24) for name in ("prober", "partner", "control")}
        self.secret_key = secrets.token_urlsafe(48)

    # --- set-up ---------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIE_", "SANDBOX_", "DATABASE_URL",
                                                                          "CELERY_"))}
        env.update({
            "DJANGO_SETTINGS_MODULE": "vigie.settings",
            "DATABASE_URL": self.database.url,
            "CELERY_BROKER_URL": self.broker_url,
            "VIGIE_CACHE_URL": self.cache_url,
            "VIGIE_DATA_DIR": str(self.work / "data"),
            "VIGIE_SECRET_KEY": self.secret_key,
            "VIGIE_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "VIGIE_PUBLIC_URL": f"http://127.0.0.1:{self.ports['nginx']}",
            "VIGIE_ALLOW_PRIVATE_TARGETS": "loopback",
            "VIGIE_LOG_LEVEL": "WARNING",
            "VIGIE_EMAIL_URL": "dummy://",
            "VIGIE_DISPATCH_EVERY": str(self.args.dispatch_every),
            "PORT": str(self.ports["web"]),
            "SANDBOX_PORT": str(self.ports["sandbox"]),
            "SANDBOX_PROBER_TOKEN": self.tokens["prober"],
            "SANDBOX_PARTNER_TOKEN": self.tokens["partner"],
            "SANDBOX_CONTROL_TOKEN": self.tokens["control"],
        })
        return env

    def setup(self) -> None:
        services.ensure_debian_packages({"nginx": "nginx", "wrk": "wrk"})
        pg = urlsplit(self.args.pg_url)
        services.ensure_postgres(pg.hostname or "127.0.0.1", pg.port or 5432, self.started_servers)
        services.ensure_redis(self.args.redis_url, self.work, self.started_servers)
        for url in (self.broker_url, self.cache_url):
            services.redis_flush(url)
        log(f"private database {self.database.name}, Redis dbs {self.args.broker_db} and {self.args.cache_db}, "
            f"work folder {self.work}")
        self.database.create()
        os.environ.update(self.env())
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        env = self.env()
        process = self.processes.start("sandbox", [PYTHON, MANAGE, "sandbox", "serve", "--port",
                                                   str(self.ports["sandbox"])], env)
        wait_for_port(self.ports["sandbox"], process)

    def seed(self) -> None:
        from django.utils import timezone

        from bench import seed

        now = timezone.now()
        began = time.monotonic()
        seed.layout_create(now=now, platforms=self.args.platforms, components=self.args.components,
                           sandbox_url=f"http://127.0.0.1:{self.ports['sandbox']}",
                           prober_token=self.tokens["prober"], partner_token=self.tokens["partner"])
        history = seed.history_create(now=now, days=self.args.history_days)
        history["seconds"] = time.monotonic() - began
        log(f"history: {history['status_changes']:,} status changes, {history['incidents']:,} incidents, "
            f"{history['run_hours']:,} hourly rollups in {history['seconds']:.0f} s")
        log(f"seeding {self.args.runs:,} runs")
        runs = seed.runs_create(total=self.args.runs, now=now)
        log(f"runs: {runs['runs']:,} in {runs['total_s']:.0f} s ({runs['bytes'] / 2**30:.1f} GiB with indexes)")
        self.results["seed"] = {"history": history, "runs": runs}

    # --- 1. public reads ------------------------------------------------------------------------
    def web_start(self) -> None:
        a = self.args
        command = [PYTHON, "-m", "gunicorn", "vigie.wsgi:application", "--bind",
                   f"127.0.0.1:{self.ports['web']}", "--workers", str(a.gunicorn_workers), "--worker-class",
                   a.gunicorn_class, "--log-level", "warning", "--keep-alive", "5", "--backlog", "2048"]
        if a.gunicorn_class == "gthread":
            command += ["--threads", str(a.gunicorn_threads)]
        process = self.processes.start("web", command, self.env())
        wait_for_port(self.ports["web"], process)

    def reads(self) -> None:
        import requests

        a = self.args
        site = self.work / "site"
        from django.utils import timezone

        from probes.models import ProbeLocation

        ProbeLocation.objects.update(last_run_at=timezone.now())  # as measured below (public_changed)
        began = time.monotonic()
        out = subprocess.run([PYTHON, MANAGE, "publish", "--out", str(site)], env=self.env(), capture_output=True,
                             text=True)
        if out.returncode != 0:
            raise RuntimeError(f"publish failed:\n{out.stderr[-3000:]}")
        files = sum(1 for p in site.rglob("*") if p.is_file() and not p.name.startswith("."))
        published_s = time.monotonic() - began
        log(f"published {files:,} files in {published_s:.0f} s")
        for path in [site, *site.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        static = self.work / "static"
        static.mkdir(mode=0o755)
        targets = {"/": "index.html", "/api/v2/summary.json": "api/v2/summary.json"}
        for url, name in targets.items():
            shutil.copyfile(site / name, static / Path(name).name)
            (static / Path(name).name).chmod(0o644)
        services.nginx_start(self.processes, work=self.work / "nginx", port=self.ports["nginx"],
                             static_port=self.ports["static"], root=site, static_root=static,
                             upstream_port=self.ports["web"], workers=a.nginx_workers)
        web, nginx, plain = (f"http://127.0.0.1:{self.ports[n]}" for n in ("web", "nginx", "static"))
        notes = []
        for url, name in targets.items():
            live = requests.get(web + url, timeout=30)
            published = requests.get(nginx + url, timeout=30)
            if live.status_code != 200 or published.status_code != 200:
                raise RuntimeError(f"{url}: gunicorn answered {live.status_code}, nginx {published.status_code}")
            if len(live.content) != len(published.content):
                notes.append(f"{url}: the live page ({len(live.content)} B) and the copy "
                             f"({len(published.content)} B) differ in size")
            for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                           "Access-Control-Allow-Origin"):
                if live.headers.get(header) != published.headers.get(header):
                    notes.append(f"{url}: {header} differs between the live site ({live.headers.get(header)!r}) "
                                 f"and docs/nginx.conf ({published.headers.get(header)!r})")
        for url in ("/history.atom", "/history.rss", "/badges/status.svg", "/api/v2/status.json", "/fr/", "/history"):
            live = requests.get(web + url, timeout=30, headers={"Accept-Language": "en"})
            published = requests.get(nginx + url, timeout=30)
            for header in ("Content-Type", "Content-Security-Policy", "Access-Control-Allow-Origin"):
                if (live.status_code, live.headers.get(header)) != (published.status_code, published.headers.get(header)):
                    notes.append(f"{url}: {header} of the live site {live.status_code} {live.headers.get(header)!r}, "
                                 f"of the copy {published.status_code} {published.headers.get(header)!r}")
        # A page not in the copy goes to gunicorn (try_files … @vigie).
        fallback = requests.get(nginx + "/oncall/login/", timeout=30)
        if fallback.status_code != 200:
            notes.append(f"/oncall/login/ through nginx answered {fallback.status_code}, not gunicorn's 200")
        # Every gunicorn worker imports the URLconf (and with it most of Vigie) on its first request.
        for url in targets:
            wrk(web + url, connections=a.connections, threads=a.wrk_threads, seconds=2)
        rows = []
        encoded_sizes: dict[str, dict] = {}
        from statuspage.cache import public_changed as announce

        def public_changed() -> None:
            # The seeded probes last ran when seeded: with no engine running, they go stale within
            # minutes, and the documents shrink (summary.json lists no component that is not
            # measured: 281 bytes, not 22 KB). Each copy measured says they ran just now.
            ProbeLocation.objects.update(last_run_at=timezone.now())
            announce()

        def measure(label: str, base: str, path: str, url: str, size: int, headers: dict | None = None) -> WrkResult:
            result = wrk(base + path, connections=a.connections, threads=a.wrk_threads, seconds=a.seconds,
                         headers=headers)
            log(f"  {label:<31} {url:<22} {result.requests_per_s:>9,.0f} req/s  p50 {num(result.p50_ms, 2)} ms  "
                f"p99 {num(result.p99_ms, 2)} ms, {result.errors} errors")
            return result

        def median_of_turns(labelled: dict[str, tuple], url: str, size: int) -> None:
            """Measurements taken in turns, three times each: the median of each is the figure (the
            machine's speed drifts; turns put the same drift on every side of a ratio)."""
            rounds: dict[str, list[WrkResult]] = {label: [] for label in labelled}
            for _ in range(3):
                for label, (base, path, headers) in labelled.items():
                    if base not in (nginx, plain):
                        # A fresh copy (they live 30 s) that lasts the whole measurement.
                        public_changed()
                        _fresh(base + path, headers)
                    rounds[label].append(measure(label, base, path, url, size, headers))
            for label, results in rounds.items():
                middle = sorted(results, key=lambda r: r.requests_per_s)[1]
                rows.append({"server": label, "url": url, "bytes": size, **asdict(middle),
                             "rounds": [r.requests_per_s for r in results]})

        for url, name in targets.items():
            size = (site / name).stat().st_size
            # Served from the cache: a fresh entry (they live 30 s) that lasts the whole run, as
            # between two public changes.
            public_changed()
            _fresh(web + url)
            rows.append({"server": "gunicorn", "url": url, "bytes": size,
                         **asdict(measure("gunicorn", web, url, url, size))})
            # What every status change does: each worker finds the cache old at the same moment.
            public_changed()
            rows.append({"server": "gunicorn, just after a change", "url": url, "bytes": size,
                         **asdict(measure("gunicorn, just after a change", web, url, url, size))})
            _settle(web + url)  # renders still queued must not run into the next measurement
            # The copy and the yardstick in turns.
            median_of_turns({"nginx, published copy": (nginx, url, None),
                             "nginx, plain file of that size": (plain, "/" + Path(name).name, None)}, url, size)
            # What a browser gets (Accept-Encoding: br; statuspage/encoding.py): gunicorn's cached
            # brotli copy beside nginx sending the very same bytes as a plain file, in turns.
            accept = {"Accept-Encoding": "gzip, deflate, br"}
            encoded = requests.get(web + url, headers=accept, timeout=30, stream=True)
            body = encoded.raw.read(decode_content=False)
            coding = encoded.headers.get("Content-Encoding", "identity")
            encoded_name = Path(name).name + "." + coding
            (static / encoded_name).write_bytes(body)
            (static / encoded_name).chmod(0o644)
            encoded_sizes[url] = {"coding": coding, "bytes": len(body), "identity": size}
            median_of_turns({f"gunicorn, {coding}": (web, url, accept),
                             f"nginx, plain file of the {coding} bytes": (plain, "/" + encoded_name, None)},
                            url, len(body))
            # A status change under that load: one request renders (and encodes), the others get
            # the earlier copy's variant (the no-stampede property, with encodings).
            public_changed()
            rows.append({"server": f"gunicorn, {coding}, just after a change", "url": url, "bytes": len(body),
                         **asdict(measure(f"gunicorn, {coding}, just after a change", web, url, url, len(body),
                                          accept))})
            _settle(web + url)
            if a.profile and a.py_spy:
                # Profiled apart from the figures above (sampling takes CPU too).
                public_changed()
                requests.get(web + url, timeout=60)
                out = Path(a.profile) / f"gunicorn-cached-{name.replace('/', '_')}.txt"
                profiler = services.py_spy_start(a.py_spy, pid=self.processes.running["web"].pid,
                                                 seconds=a.seconds, out=out)
                time.sleep(0.5)
                wrk(web + url, connections=a.connections, threads=a.wrk_threads, seconds=a.seconds)
                profiler.wait(timeout=60)
        # The same cache hits (brotli) on other WSGI servers, each beside nginx sending the same bytes.
        servers = {f"gunicorn sync × {a.gunicorn_workers}": web}
        for name in [n.strip() for n in a.servers.split(",") if n.strip()]:
            port = free_port()
            if name == "gunicorn-gthread":
                label = f"gunicorn gthread {a.gunicorn_workers} × {a.gunicorn_threads}"
                command = [PYTHON, "-m", "gunicorn", "vigie.wsgi:application", "--bind", f"127.0.0.1:{port}",
                           "--workers", str(a.gunicorn_workers), "--worker-class", "gthread", "--threads",
                           str(a.gunicorn_threads), "--log-level", "warning", "--keep-alive", "5", "--backlog", "2048"]
            elif name == "granian":
                granian = shutil.which("granian", path=str(Path(PYTHON).parent))
                if granian is None:
                    notes.append("granian is not installed: not compared (pip install granian)")
                    continue
                label = f"granian wsgi × {a.gunicorn_workers}"
                command = [granian, "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port), "--workers",
                           str(a.gunicorn_workers), "--no-ws", "--log-level", "warning", "--backlog", "2048",
                           "vigie.wsgi:application"]
            else:
                raise SystemExit(f"--servers: unknown server {name!r}")
            process = self.processes.start(f"server-{name}", command, self.env())
            wait_for_port(port, process)
            servers[label] = f"http://127.0.0.1:{port}"
        accept = {"Accept-Encoding": "gzip, deflate, br"}
        if len(servers) > 1:
            for url, sizes in encoded_sizes.items():
                for base in servers.values():  # each worker's first request imports the URLconf
                    wrk(base + url, connections=a.connections, threads=a.wrk_threads, seconds=1, headers=accept)
                encoded_name = Path(targets[url]).name + "." + sizes["coding"]
                before = len(rows)
                median_of_turns({**{f"server: {label}": (base, url, accept) for label, base in servers.items()},
                                 f"server: nginx, plain file of the {sizes['coding']} bytes":
                                     (plain, "/" + encoded_name, None)}, url, sizes["bytes"])
                # Each through a status change under that load (the no-stampede property).
                for label, base in servers.items():
                    _settle(base + url)
                    public_changed()
                    rows.append({"server": f"server: {label}, just after a change", "url": url,
                                 "bytes": sizes["bytes"], **asdict(measure(f"{label}, just after a change", base, url,
                                                                           url, sizes["bytes"], accept))})
                for row in rows[before:]:
                    row["compared"] = True
        for name in [n.strip() for n in a.servers.split(",") if n.strip()]:
            self.processes.stop(f"server-{name}")
        web_rss = max(self.processes.rss_mb("web").values(), default=0)
        self.results["reads"] = {"rows": rows, "notes": notes, "encoded": encoded_sizes, "published_files": files, "publish_s": published_s,
                                 "web_rss_mb": web_rss,
                                 "gunicorn": f"{a.gunicorn_workers} {a.gunicorn_class} workers"
                                             + (f" × {a.gunicorn_threads} threads" if a.gunicorn_class == "gthread"
                                                else ""),
                                 "wrk": f"-t{a.wrk_threads} -c{a.connections} -d{a.seconds:g}s"}

    # --- 2. probe engine --------------------------------------------------------------------------
    def engine(self) -> None:
        import requests

        from bench.engine import connection_cost, engine_trial, load_probes_create, queries_of_one_run

        a = self.args
        placements = load_probes_create(rate=a.engine_rate)
        fault = requests.post(f"http://127.0.0.1:{self.ports['sandbox']}/_sandbox/faults", timeout=10,
                              headers={"Authorization": f"Bearer {self.tokens['control']}"},
                              json={"kind": f"slow:{a.sandbox_delay_ms}", "action": "*"})
        fault.raise_for_status()
        one_run = queries_of_one_run()
        log(f"one run: {one_run['queries']} SQL statements ({one_run['by_kind']}), {one_run['seconds'] * 1000:.0f} ms, "
            f"{one_run['cpu_ms']:.1f} ms CPU in this process")
        connect = connection_cost(self.database)
        log(f"one new PostgreSQL connection: {connect['wall_ms']:.2f} ms, {connect['client_cpu_ms']:.2f} ms CPU here, "
            f"{connect['server_cpu_ms']:.2f} ms CPU in the server")
        log(f"engine: {placements} load placements every 5 s ({a.engine_rate:g} runs/s offered, plus the seeded "
            f"probes' {a.components * 2 / 30:.1f}); sandbox answers in {a.sandbox_delay_ms} ms")
        trials = []
        for spec in a.engine_pools.split(","):
            pool, _, concurrency = spec.strip().partition(":")
            concurrency = int(concurrency or 4)
            # One database connection per worker thread (or process): stay within the server's limit.
            needed = (concurrency * 2 if pool == "threads" else concurrency * 2) + 12
            free = self.database.free_connections()
            if needed > free - 5:
                log(f"  skipping {pool}:{concurrency}: needs ~{needed} database connections, {free} free")
                trials.append({"pool": pool, "concurrency": concurrency, "skipped": f"needs ~{needed} database "
                                                                                   f"connections, {free} free"})
                continue
            log(f"  {pool} pool, concurrency {concurrency} per location worker")
            result = engine_trial(processes=self.processes, env=self.env(), pool=pool, concurrency=concurrency,
                                  offered=a.engine_rate + a.components * 2 / 30, warmup_s=a.engine_warmup,
                                  window_s=a.engine_window, database=self.database, broker_url=self.broker_url,
                                  locations=["sacramento", "atlanta"], py_spy=a.py_spy,
                                  profile_dir=Path(a.profile) if a.profile else None)
            trials.append(asdict(result))
            log(f"    {result.runs_per_s:.1f} runs/s, lateness p50 {num(result.lateness_p50_s, 2)} s "
                f"p99 {num(result.lateness_p99_s, 2)} s, {num(result.cpu_ms_per_run, 2)} ms CPU/run, "
                f"worker RSS {result.worker_rss_mb:.0f} MB")
        self.results["engine"] = {"trials": trials, "placements": placements, "one_run": one_run, "connect": connect, "dispatch_every": a.dispatch_every,
                                  "sandbox_delay_ms": a.sandbox_delay_ms, "warmup_s": a.engine_warmup,
                                  "window_s": a.engine_window}

    # --- idle cost and memory; cost as the work grows (bench/cost.py) ------------------------------
    def idle(self) -> None:
        from bench.cost import run_idle
        from bench.seed import LOCATIONS

        a = self.args
        self.processes.stop("web")  # each layout brings its own web processes, on the same port
        try:
            results = run_idle(self.processes, self.env(), self.database, port_of=lambda: self.ports["web"],
                               location=LOCATIONS[0], settle_s=a.idle_settle, window_s=a.idle_window,
                               layouts=[x.strip() for x in a.idle_layouts.split(",") if x.strip()],
                               profile_dir=Path(a.profile) if a.profile else None, py_spy=a.py_spy)
        finally:
            self.web_start()
        self.results["idle"] = {"layouts": [asdict(r) for r in results], "window_s": a.idle_window,
                                "settle_s": a.idle_settle}

    def cost(self) -> None:
        from bench.cost import GROW_INTERVAL_S, run_growth
        from bench.seed import LOCATIONS

        a = self.args
        idle = {r["layout"]: r for r in self.results.get("idle", {}).get("layouts", [])}
        idle_share = idle["small"]["cpu_share"] if "small" in idle else None
        import requests

        requests.post(f"http://127.0.0.1:{self.ports['sandbox']}/_sandbox/faults", timeout=10,
                      headers={"Authorization": f"Bearer {self.tokens['control']}"},
                      json={"kind": f"slow:{a.sandbox_delay_ms}", "action": "*"}).raise_for_status()
        self.processes.stop("web")
        try:
            results = run_growth(self.processes, self.env(), port_of=lambda: self.ports["web"], location=LOCATIONS[0],
                                 counts=[int(c) for c in a.cost_probes.split(",") if c.strip()],
                                 workers=[int(w) for w in a.cost_workers.split(",") if w.strip()],
                                 warmup_s=a.cost_warmup, window_s=a.cost_window, idle_share=idle_share)
        finally:
            self.web_start()
        self.results["cost"] = {"trials": [asdict(r) for r in results], "interval_s": GROW_INTERVAL_S,
                                "idle_share": idle_share, "warmup_s": a.cost_warmup, "window_s": a.cost_window,
                                "sandbox_delay_ms": a.sandbox_delay_ms}

    # --- 3. history, 4. detection -------------------------------------------------------------------
    def history(self) -> None:
        # public_pages.py makes a database per history, named after this one, and drops them.
        env = {**self.env(), "DATABASE_URL": self.pages_database.url}
        out = subprocess.run([PYTHON, "bench/public_pages.py", "--components", str(self.args.components),
                              "--days", f"1,90,{self.args.history_days}", "--url", "/", "--url", "/api/v2/summary.json",
                              "--repeat", str(self.args.render_repeat), "--database-url", self.pages_database.url,
                              "--json"], env=env, capture_output=True, text=True, cwd=services.ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"bench/public_pages.py failed:\n{out.stderr[-3000:]}")
        self.results["history"] = json.loads(out.stdout.strip().splitlines()[-1])

    def detection(self) -> None:
        env = {k: v for k, v in self.env().items() if k not in ("DATABASE_URL", "VIGIE_DATA_DIR")}
        out = subprocess.run([PYTHON, "bench/detection.py", "--scenario", "feb-2023", "--seeds", "0", "--json"],
                             env=env, capture_output=True, text=True, cwd=services.ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"bench/detection.py failed:\n{out.stderr[-3000:]}")
        self.results["detection"] = json.loads(out.stdout.strip().splitlines()[-1])

    # --- the whole run ----------------------------------------------------------------------------
    def run(self) -> None:
        began = time.monotonic()
        self.setup()
        self.seed()
        self.web_start()
        sections = [("reads", self.reads), ("engine", self.engine), ("idle", self.idle), ("cost", self.cost),
                    ("history", self.history),
                    ("detection", self.detection)]
        for name, section in sections:
            if name in self.args.skip:
                continue
            log(f"section: {name}")
            section()
            if name == "reads":
                # Its threads keep the database connections the renders opened: give them back.
                self.processes.stop("web")
                self.web_start()
        self.results["seconds"] = time.monotonic() - began

    def cleanup(self) -> None:
        try:
            self.processes.stop()
        finally:
            # public_pages.py drops its databases per history itself; these too if it was killed.
            siblings = [PrivateDatabase(self.args.pg_url, f"{self.pages_database.name}_{days}d", created=True)
                        for days in (1, 90, self.args.history_days)] if "history" not in self.args.skip else []
            for database in (self.pages_database, *siblings, self.database):
                try:
                    from django.db import connections

                    connections.close_all()
                except Exception:
                    pass
                try:
                    database.drop()
                except Exception as exc:  # say so: a database left behind must be noticed
                    print(f"could not drop database {database.name}: {exc}", file=sys.stderr)
            for url in (self.broker_url, self.cache_url):
                services.redis_flush(url)
            services.stop_started_servers(self.started_servers)
            if self.args.keep_logs:
                print(f"logs kept in {self.processes.logs}", file=sys.stderr)
                shutil.copytree(self.processes.logs, self.args.keep_logs, dirs_exist_ok=True)
            shutil.rmtree(self.work, ignore_errors=True)


def _fresh(url: str, headers: dict | None = None, timeout: float = 30.0) -> None:
    """Ask for `url` until it comes from the cache's current copy (X-Cache: hit): after a change
    the first answers are the copy from before while the new one renders behind them."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(url, headers=headers, timeout=30).headers.get("X-Cache") == "hit":
            return
        time.sleep(0.05)


def _settle(url: str, timeout: float = 60.0) -> None:
    """Wait until `url` answers from the cache again, quickly, three times in a row."""
    import requests

    deadline, quick = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quick < 3:
        began = time.monotonic()
        try:
            requests.get(url, timeout=30)
            quick = quick + 1 if time.monotonic() - began < 0.05 else 0
        except requests.RequestException:
            quick = 0
        time.sleep(0.2)


def main() -> int:
    args = parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        if not args.py_spy:
            sys.exit("--profile needs py-spy: pip install py-spy (into any venv) and pass --py-spy PATH")
    bench = Bench(args)

    def terminate(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGINT too, explicitly: started in the background by a script, a process inherits it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, terminate)
    status = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        status = 130
    except Exception:
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        log("cleaning up")
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut it short
            signal.signal(signum, signal.SIG_IGN)
        bench.cleanup()
    if status != 130:
        report(bench.results, args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(bench.results, indent=2, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
