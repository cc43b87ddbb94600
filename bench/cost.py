"""What Vigie costs when nothing happens, and how its cost grows with the work (issue 19).

Called by bench/run.py (sections "idle" and "cost"), on the database it seeded (50 components,
one read probe each):

  idle   — a whole install (web, beat, workers) with every probe paused: the CPU all its processes
           spend over a window (process CPU-time deltas from /proc/<pid>/stat, so the figure holds
           on a shared machine), and their memory as PSS (/proc/<pid>/smaps_rollup: shared pages
           split between the processes that share them). Two layouts, measured in the same run:
           the large one of docs/production.md (the reference) and the small one
           (docs/performance.md, "A small install").
  cost   — the small layout at 10, 100 and 1,000 read probes at one location, every 5 s, with 1 and
           2 location worker processes: runs/s, CPU per run (all Vigie processes; and less the idle
           cost, the part that grows with the work), database growth per day at that rate, and
           memory (PSS). Then how each grows from 10 to 1,000 probes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.services import CELERY, PYTHON, Processes, log, wait_for_port

GROW_INTERVAL_S = 5
MEASURABLE_GROWTH = 2**20

# The layouts. Each entry: process name → (command after the common part, what it is).
#   large: docs/production.md's (gunicorn ×4, a `vigie` worker prefork ×3, a location worker prefork ×2),
#          what the 718 MB of issue 19 was measured on;
#   small: docs/performance.md's small install: gunicorn ×2 preloaded, one worker process for Vigie's
#          own queue and the location's (threads), beat.
LAYOUTS = ("large", "small")


def _worker(*extra: str) -> list[str]:
    return [*CELERY, "worker", "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
            *extra]


def layout_commands(layout: str, *, port: int, location: str, data_dir: str, location_workers: int = 1) \
        -> dict[str, list[str]]:
    beat = [*CELERY, "beat", "--loglevel", "WARNING", "--schedule", data_dir + "/celerybeat-schedule"]
    gunicorn = [PYTHON, "-m", "gunicorn", "vigie.wsgi:application", "--bind", f"127.0.0.1:{port}",
                "--log-level", "warning"]
    if layout == "large":
        commands = {
            "web": [*gunicorn, "--workers", "4"],
            "beat": beat,
            "worker-vigie": _worker("-Q", "vigie", "-n", "vigie@%h", "--concurrency", "3"),
        }
        for i in range(location_workers):
            commands[f"worker-{location}-{i}"] = _worker("-Q", f"probes.{location}", "-n", f"{location}{i}@%h",
                                                         "--concurrency", "2")
        return commands
    if layout == "small":
        commands = {
            "web": [*gunicorn, "--workers", "2", "--preload"],
            "beat": beat,
        }
        # One process for Vigie's own queue and the location's: threads, as a location worker is
        # (the runs wait on the platform); a second one consumes the location's queue only.
        commands[f"worker-{location}-0"] = _worker("-Q", f"vigie,probes.{location}", "-n", f"{location}0@%h",
                                                   "--pool", "threads", "--concurrency", "16")
        for i in range(1, location_workers):
            commands[f"worker-{location}-{i}"] = _worker("-Q", f"probes.{location}", "-n", f"{location}{i}@%h",
                                                         "--pool", "threads", "--concurrency", "16")
        return commands
    raise ValueError(layout)


def pss_mb(pids: list[int]) -> dict[int, float]:
    """Proportional set size of each process (MB): its private pages, plus its share of those it
    shares with others (a forked worker's untouched pages count once across the family)."""
    out = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    out[pid] = int(line.split()[1]) / 1024
                    break
        except OSError:
            continue
    return out


@dataclass
class Install:
    processes: Processes
    names: list[str]

    def cpu_by_name(self) -> dict[str, float]:
        return {name: self.processes.cpu_seconds(name) for name in self.names}

    def pss_by_name(self) -> dict[str, float]:
        return {name: sum(pss_mb(self.processes.session_pids(name)).values()) for name in self.names}

    def process_count(self) -> int:
        return len(self.processes.session_pids(*self.names))


# Settings of each layout: the large one runs Vigie's defaults; the small one dispatches every 10 s
# (each pass still sends every run at its slot, polling until the next one: lateness does not
# depend on it; what does is how soon a silent scheduler is noticed — three intervals — and how
# soon a standby beat takes over), and runs the watchdog and the official sources' claim every
# 30 s instead of 10 (docs/performance.md, "A small install").
LAYOUT_SETTINGS = {"large": {"VIGIE_DISPATCH_EVERY": "2"},
                   "small": {"VIGIE_DISPATCH_EVERY": "10", "VIGIE_WATCHDOG_EVERY": "30",
                             "VIGIE_OFFICIAL_CLAIM_EVERY": "30"}}


def install_start(processes: Processes, env: dict, layout: str, *, port: int, location: str,
                  location_workers: int = 1) -> Install:
    commands = layout_commands(layout, port=port, location=location, data_dir=env["VIGIE_DATA_DIR"],
                               location_workers=location_workers)
    env = {**env, **LAYOUT_SETTINGS[layout], "PORT": str(port)}
    for name, command in commands.items():
        processes.start(name, command, env)
    wait_for_port(port, processes.running["web"], timeout=60)
    return Install(processes=processes, names=list(commands))


def probes_pause(paused: bool, *, only: str | None = None) -> None:
    from probes.models import Probe

    probes = Probe.objects.all() if only is None else Probe.objects.exclude(slug__startswith=only)
    probes.update(enabled=not paused)


@dataclass
class IdleResult:
    layout: str
    seconds: float
    processes: int
    cpu_share: float  # of one core, all Vigie processes
    cpu_share_by_name: dict = field(default_factory=dict)
    pss_mb: float = 0.0
    pss_mb_by_name: dict = field(default_factory=dict)
    db_cpu_share: float | None = None


def idle_measure(processes: Processes, env: dict, database, *, layout: str, port: int, location: str,
                 settle_s: float, window_s: float, profile_dir: Path | None = None,
                 py_spy: str | None = None) -> IdleResult:
    """Start `layout` with every probe paused, let it settle, then measure its CPU over `window_s`
    and its memory (PSS) at the end of it."""
    probes_pause(True)
    install = install_start(processes, env, layout, port=port, location=location)
    try:
        # One page served, as a visitor would: the web processes' memory is a serving one.
        import requests

        for path in ("/", "/api/v2/summary.json"):
            for _ in range(4):
                requests.get(f"http://127.0.0.1:{port}{path}", timeout=60)
        time.sleep(settle_s)
        processes.check()
        profilers = []
        if profile_dir and py_spy:  # every process of the layout but the web's, sampled while idle
            from bench.services import py_spy_start

            profilers = [py_spy_start(py_spy, pid=processes.running[name].pid, seconds=window_s,
                                      out=profile_dir / f"idle-{layout}-{name}.txt")
                         for name in install.names if name != "web"]
        cpu0, db0, t0 = install.cpu_by_name(), database.server_cpu_seconds(), time.monotonic()
        time.sleep(window_s)
        for profiler in profilers:
            profiler.wait(timeout=60)
        cpu1, db1, elapsed = install.cpu_by_name(), database.server_cpu_seconds(), time.monotonic() - t0
        processes.check()
        pss = install.pss_by_name()
        count = install.process_count()
    finally:
        processes.stop(*reversed(install.names))
    by_name = {name: (cpu1[name] - cpu0[name]) / elapsed for name in install.names}
    return IdleResult(layout=layout, seconds=elapsed, processes=count, cpu_share=sum(by_name.values()),
                      cpu_share_by_name=by_name, pss_mb=sum(pss.values()), pss_mb_by_name=pss,
                      db_cpu_share=(db1 - db0) / elapsed)


# --- cost as the work grows ------------------------------------------------------------------------

def grow_probes_create(count: int, *, location_name: str) -> None:
    """`count` read probes at one location, every GROW_INTERVAL_S, spread over the seeded platforms
    and components (made once, the largest count; a trial enables the first `count`)."""
    from detection.models import Component
    from probes.models import Location, Platform, Probe, ProbeLocation

    location = Location.objects.get(name=location_name)
    platforms = list(Platform.objects.order_by("id"))
    components = list(Component.objects.order_by("id"))
    have = Probe.objects.filter(slug__startswith="grow-").count()
    for i in range(have, count):
        probe = Probe.objects.create(name=f"Grow {i}", slug=f"grow-{i:05d}", platform=platforms[i % len(platforms)],
                                     action="read", interval_s=GROW_INTERVAL_S, timeout_s=10,
                                     latency_threshold_ms=2000, enabled=False)
        ProbeLocation.objects.create(probe=probe, location=location)
        components[i % len(components)].probes.add(probe)


def grow_schedule(count: int, *, start_in_s: float) -> None:
    """Enable the first `count` growth probes only, their slots spread evenly over one interval."""
    from datetime import timedelta

    from django.utils import timezone

    from probes.models import Probe, ProbeLocation

    Probe.objects.update(enabled=False)
    ids = list(Probe.objects.filter(slug__startswith="grow-").order_by("slug").values_list("id", flat=True)[:count])
    start = timezone.now() + timedelta(seconds=start_in_s)
    placements = list(ProbeLocation.objects.filter(probe_id__in=ids).order_by("id").values_list("id", flat=True))
    for i, placement_id in enumerate(placements):
        ProbeLocation.objects.filter(id=placement_id).update(
            next_run_at=start + timedelta(seconds=GROW_INTERVAL_S * i / len(placements)), last_run_at=None,
            state="unknown", consecutive_failures=0, consecutive_successes=0, recent="", evaluated_until=None)
    Probe.objects.filter(id__in=ids).update(enabled=True)


@dataclass
class GrowthResult:
    probes: int
    location_workers: int
    offered_per_s: float
    runs_per_s: float
    failed: int
    lateness_p99_s: float | None
    cpu_ms_per_run: float | None
    cpu_ms_per_run_less_idle: float | None
    db_bytes_per_run: float | None
    db_mb_per_day: float | None
    pss_mb: float
    processes: int
    runs_table_bytes_per_run: float | None = None
    db_bytes_grown: int = 0
    runs_table_bytes_grown: int = 0


def _database_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


def _run_bytes() -> int:
    """Bytes of what runs add: the runs table, its indexes and TOAST, and the tables written per run."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
                          JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = 'public' AND c.relkind = 'r'""")
        return int(cursor.fetchone()[0])


def _runs_table_bytes() -> int:
    """Bytes of the runs table alone, with its indexes and TOAST."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('probes_run')")
        return int(cursor.fetchone()[0])


def growth_trial(processes: Processes, env: dict, *, probes: int, location_workers: int, port: int, location: str,
                 warmup_s: float, window_s: float, idle_share: float | None) -> GrowthResult:
    from django.utils import timezone

    from bench.engine import _last_run_id, window_runs

    grow_schedule(probes, start_in_s=warmup_s / 2)
    install = install_start(processes, env, "small", port=port, location=location, location_workers=location_workers)
    try:
        time.sleep(warmup_s)
        processes.check()
        cpu0, bytes0, id0, t0 = sum(install.cpu_by_name().values()), _run_bytes(), _last_run_id(), timezone.now()
        runs_bytes0 = _runs_table_bytes()
        pss = []
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline:
            time.sleep(min(3.0, max(0.0, deadline - time.monotonic())))
            pss.append(sum(install.pss_by_name().values()))
        cpu1, bytes1, id1, t1 = sum(install.cpu_by_name().values()), _run_bytes(), _last_run_id(), timezone.now()
        runs_grown = _runs_table_bytes() - runs_bytes0
        count_processes = install.process_count()
        processes.check()
    finally:
        processes.stop(*reversed(install.names))
        from probes.models import Probe

        Probe.objects.filter(slug__startswith="grow-").update(enabled=False)
    elapsed = (t1 - t0).total_seconds()
    count, failed, _, p99 = window_runs(id0, id1)
    cpu = cpu1 - cpu0
    per_run = cpu * 1000 / count if count else None
    less_idle = (cpu - (idle_share or 0) * elapsed) * 1000 / count if count and idle_share is not None else None
    rate = count / elapsed if elapsed else 0.0
    grown = bytes1 - bytes0
    # Tables grow by whole pages (and extents): below a few MB the growth says little per run.
    per_run_bytes = grown / count if count and grown >= MEASURABLE_GROWTH else None
    return GrowthResult(probes=probes, location_workers=location_workers, offered_per_s=probes / GROW_INTERVAL_S,
                        runs_per_s=rate, failed=failed, lateness_p99_s=p99, cpu_ms_per_run=per_run,
                        cpu_ms_per_run_less_idle=less_idle,
                        db_bytes_per_run=per_run_bytes,
                        db_mb_per_day=per_run_bytes * rate * 86400 / 2**20 if per_run_bytes else None,
                        pss_mb=max(pss, default=0.0), processes=count_processes, db_bytes_grown=grown,
                        runs_table_bytes_grown=runs_grown,
                        runs_table_bytes_per_run=runs_grown / count if count and runs_grown >= MEASURABLE_GROWTH else None)


def run_idle(processes: Processes, env: dict, database, *, port_of, location: str, settle_s: float,
             window_s: float, layouts: tuple[str, ...] | list[str] = LAYOUTS, profile_dir: Path | None = None,
             py_spy: str | None = None) -> list[IdleResult]:
    results = []
    for layout in layouts:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: one of {', '.join(LAYOUTS)}")
        log(f"  idle, {layout} layout: every probe paused, {settle_s:g} s to settle, {window_s:g} s measured")
        result = idle_measure(processes, env, database, layout=layout, port=port_of(), location=location,
                              settle_s=settle_s, window_s=window_s, profile_dir=profile_dir, py_spy=py_spy)
        log(f"    {result.processes} processes, {result.cpu_share * 100:.2f} % of a core, {result.pss_mb:.0f} MB PSS; "
            + ", ".join(f"{k} {v * 100:.2f} %" for k, v in result.cpu_share_by_name.items()))
        results.append(result)
    return results


def run_growth(processes: Processes, env: dict, *, port_of, location: str, counts: list[int],
               workers: list[int], warmup_s: float, window_s: float, idle_share: float | None) -> list[GrowthResult]:
    grow_probes_create(max(counts), location_name=location)
    results = []
    for count in counts:
        for n in workers:
            log(f"  {count} probes every {GROW_INTERVAL_S} s at {location}, {n} location worker process(es)")
            result = growth_trial(processes, env, probes=count, location_workers=n, port=port_of(),
                                  location=location, warmup_s=warmup_s, window_s=window_s, idle_share=idle_share)
            log(f"    {result.runs_per_s:.1f} runs/s (offered {result.offered_per_s:g}), "
                f"{result.cpu_ms_per_run or 0:.2f} ms CPU/run ({result.cpu_ms_per_run_less_idle or 0:.2f} less idle), "
                f"{result.db_mb_per_day or 0:,.0f} MB/day, {result.pss_mb:.0f} MB PSS")
            results.append(result)
    # A trial too small to see its tables grow: its runs are the same rows, at the size measured
    # where they could be (the largest growth), times its own rate.
    measured = [r for r in results if r.db_bytes_per_run]
    if measured:
        size = max(measured, key=lambda r: r.runs_per_s).db_bytes_per_run
        for r in results:
            if r.db_bytes_per_run is None and r.runs_per_s:
                r.db_mb_per_day = size * r.runs_per_s * 86400 / 2**20
    return results
