"""The probe engine under load: many read probes at short intervals, the sandbox answering every
request in 100 ms, and the real scheduler, dispatcher, workers and evaluation on PostgreSQL + Redis.

Measured over a window after a warm-up: runs recorded per second, dispatch lateness
(Run.started_at − Run.scheduled_for), CPU of every Vigie process (web, beat, the `vigie` worker,
the location workers, from /proc/<pid>/stat) per run, the largest resident size of a worker
process, and — for information, not Vigie's — the CPU of the PostgreSQL server and of the sandbox.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from bench.services import CELERY, Processes, cpu_seconds_of, py_spy_start, redis_flush

LOAD_INTERVAL_S = 5


@dataclass
class EngineResult:
    pool: str
    concurrency: int
    offered_per_s: float
    runs_per_s: float
    failed: int
    lateness_p50_s: float | None
    lateness_p99_s: float | None
    cpu_ms_per_run: float | None
    worker_rss_mb: float
    web_rss_mb: float
    db_cpu_ms_per_run: float | None
    sandbox_cpu_ms_per_run: float | None
    db_sessions_per_run: float | None
    cpu_ms_per_run_by_process: dict


def load_probes_create(*, rate: float, interval_s: int = LOAD_INTERVAL_S) -> int:
    """Enough read probes at every location, spread over the platforms and components, to offer
    `rate` runs per second. Returns the number of placements."""
    from detection.models import Component
    from probes.models import Location, Platform, Probe, ProbeLocation

    locations = list(Location.objects.all())
    platforms = list(Platform.objects.order_by("id"))
    components = list(Component.objects.order_by("id"))
    count = max(1, round(rate * interval_s / len(locations)))
    for i in range(count):
        probe = Probe.objects.create(name=f"Load {i}", slug=f"load-{i}", platform=platforms[i % len(platforms)],
                                     action="read", interval_s=interval_s, timeout_s=10, latency_threshold_ms=2000,
                                     enabled=False)
        ProbeLocation.objects.bulk_create([ProbeLocation(probe=probe, location=loc) for loc in locations])
        components[i % len(components)].probes.add(probe)
    return count * len(locations)


def load_schedule(*, start_in_s: float, enabled: bool) -> None:
    """Spread the load placements evenly over one interval from `start_in_s` from now, as a
    long-running dispatcher leaves them; reset their state so every trial starts alike."""
    from django.utils import timezone

    from probes.models import Probe, ProbeLocation

    load = Probe.objects.filter(slug__startswith="load-")
    start = timezone.now() + timedelta(seconds=start_in_s)
    # Every placement, the seeded ones too: a slot left in the past would count as lateness.
    for interval, ids in ((LOAD_INTERVAL_S, ProbeLocation.objects.filter(probe__in=load)),
                          (None, ProbeLocation.objects.exclude(probe__in=load))):
        placements = list(ids.select_related("probe").order_by("id"))
        for i, placement in enumerate(placements):
            every = interval or placement.probe.interval_s
            ProbeLocation.objects.filter(id=placement.id).update(
                next_run_at=start + timedelta(seconds=every * i / len(placements)),
                last_run_at=None, state="unknown", consecutive_failures=0, consecutive_successes=0, recent="",
                evaluated_until=None)
    load.update(enabled=enabled)


def queries_of_one_run() -> dict:
    """The SQL one run costs, recorded in this process against the sandbox (the third of three, so
    that what is made once — the account's remote id, the hour's rollup row — is made already),
    stored alone; and what storing a batch of 32 finished runs costs (probes.recorder)."""
    import uuid

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from probes import spool
    from probes.models import ProbeLocation
    from probes.runner import run_execute, run_payload

    placement = ProbeLocation.objects.filter(probe__slug__startswith="load-").order_by("id").first()
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
            elapsed = time.perf_counter() - began
    cpu0, runs = time.process_time(), 20
    for _ in range(runs):
        run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
    cpu_ms = (time.process_time() - cpu0) * 1000 / runs
    kinds: dict[str, int] = {}
    for query in captured.captured_queries:
        word = query["sql"].split(None, 1)[0].upper()
        kinds[word] = kinds.get(word, 0) + 1

    batch = list(ProbeLocation.objects.filter(probe__slug__startswith="load-").select_related("probe", "location")
                 .order_by("id")[:32])
    now = timezone.now()
    payloads = [run_payload(key=str(uuid.uuid4()), placement=p, scheduled_for=now, started_at=now, latency_ms=100,
                            failure=None, steps=[], evidence={}, cleanup="none", secrets=[]) for p in batch]
    cpu0 = time.process_time()
    with CaptureQueriesContext(connection) as stored:
        spool.runs_store(payloads)
    batch_cpu_ms = (time.process_time() - cpu0) * 1000
    return {"queries": len(captured.captured_queries), "by_kind": kinds, "seconds": elapsed, "cpu_ms": cpu_ms,
            "sql": [q["sql"][:160] for q in captured.captured_queries],
            "batch": {"runs": len(payloads), "queries": len(stored.captured_queries), "cpu_ms": batch_cpu_ms}}


def engine_trial(*, processes: Processes, env: dict, pool: str, concurrency: int, offered: float, warmup_s: float,
                 window_s: float, database, broker_url: str, locations: list[str], profile_dir=None,
                 py_spy: str | None = None) -> EngineResult:
    from django.utils import timezone

    redis_flush(broker_url)
    load_schedule(start_in_s=warmup_s / 2, enabled=True)
    worker = [*CELERY, "worker", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
              "--without-heartbeat"]
    names = ["beat", "worker-vigie"]
    processes.start("beat", [*CELERY, "beat", "--loglevel", "WARNING", "--schedule",
                             env["VIGIE_DATA_DIR"] + "/celerybeat-schedule"], env)
    processes.start("worker-vigie", [*worker, "-Q", "vigie", "-n", "vigie@%h", "--concurrency", "3"], env)
    for location in locations:
        name = f"worker-{location}"
        processes.start(name, [*worker, "-Q", f"probes.{location}", "-n", f"{location}@%h", "--pool", pool,
                               "--concurrency", str(concurrency)], env)
        names.append(name)
    try:
        time.sleep(warmup_s)
        processes.check()
        vigie = ["web", *names]
        sandbox_pids = processes.session_pids("sandbox")
        parts = {"location workers": names[2:], "vigie worker (dispatch, watchdog)": ["worker-vigie"], "beat": ["beat"],
                 "gunicorn (idle)": ["web"]}
        by0 = {k: processes.cpu_seconds(*v) for k, v in parts.items()}
        cpu0, db0, sb0 = processes.cpu_seconds(*vigie), database.server_cpu_seconds(), cpu_seconds_of(sandbox_pids)
        sessions0 = database.sessions()
        profiler = None
        if profile_dir and py_spy:
            out = profile_dir / f"engine-{pool}-{concurrency}-{locations[0]}.txt"
            profiler = py_spy_start(py_spy, pid=processes.running[f"worker-{locations[0]}"].pid, seconds=window_s,
                                    out=out)
        t0, id0 = timezone.now(), _last_run_id()
        worker_rss, web_rss = [], []
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline:
            time.sleep(1)
            worker_rss += processes.rss_mb(*names[1:]).values()
            web_rss += processes.rss_mb("web").values()
        cpu1 = processes.cpu_seconds(*vigie)
        by1 = {k: processes.cpu_seconds(*v) for k, v in parts.items()}
        db1 = database.server_cpu_seconds()
        sb1 = cpu_seconds_of(sandbox_pids)
        sessions1 = database.sessions()
        if profiler is not None:
            profiler.wait(timeout=60)
        t1, id1 = timezone.now(), _last_run_id()
        processes.check()
    finally:
        processes.stop(*reversed(names))
        from probes.models import Probe

        Probe.objects.filter(slug__startswith="load-").update(enabled=False)
    elapsed = (t1 - t0).total_seconds()
    count, failed, p50, p99 = window_runs(id0, id1)
    per_run = (lambda seconds: seconds * 1000 / count) if count else (lambda seconds: None)
    return EngineResult(pool=pool, concurrency=concurrency, offered_per_s=offered, runs_per_s=count / elapsed,
                        failed=failed, lateness_p50_s=p50, lateness_p99_s=p99, cpu_ms_per_run=per_run(cpu1 - cpu0),
                        worker_rss_mb=max(worker_rss, default=0), web_rss_mb=max(web_rss, default=0),
                        db_cpu_ms_per_run=per_run(db1 - db0), sandbox_cpu_ms_per_run=per_run(sb1 - sb0),
                        db_sessions_per_run=(sessions1 - sessions0) / count if count else None,
                        cpu_ms_per_run_by_process={k: per_run(by1[k] - by0[k]) for k in parts})


def connection_cost(database, count: int = 300) -> dict:
    """What one new database connection costs (Celery closes Django's after every task, so each
    run opens one): wall time, this process's CPU and the server's, per connect + SELECT 1 + close."""
    import resource

    import psycopg

    def own() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    server0, own0, began = database.server_cpu_seconds(), own(), time.perf_counter()
    for _ in range(count):
        with psycopg.connect(database.url) as connection:
            connection.execute("SELECT 1")
    wall, own1, server1 = time.perf_counter() - began, own(), database.server_cpu_seconds()
    return {"wall_ms": wall * 1000 / count, "client_cpu_ms": (own1 - own0) * 1000 / count,
            "server_cpu_ms": (server1 - server0) * 1000 / count}


def window_runs(id0: int, id1: int) -> tuple[int, int, float | None, float | None]:
    """The runs recorded in a measured window, by id (id0, id1] (the seeded probes run too; ids
    follow insertion): how many, how many failed, and the p50 and p99 of their dispatch lateness
    (seconds from slot to start)."""
    from django.db import connection

    from probes.models import Run

    runs = Run.objects.filter(id__gt=id0, id__lte=id1)
    with connection.cursor() as cursor:
        cursor.execute("""SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.99) WITHIN GROUP (ORDER BY s)
                          FROM (SELECT extract(epoch FROM started_at - scheduled_for) AS s FROM probes_run
                                WHERE id > %s AND id <= %s) x""",
                       [id0, id1])
        p50, p99 = cursor.fetchone()
    return runs.count(), runs.filter(outcome="failure").count(), p50, p99


def _last_run_id() -> int:
    from probes.models import Run

    return Run.objects.order_by("-id").values_list("id", flat=True).first() or 0
