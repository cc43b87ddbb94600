"""The benchmark's data: platforms, 50 components with a year of status history, and millions of raw
runs written by one SQL statement per batch (generate_series), not through the ORM.

Runs the ORM for the layout and history (detection.simulation.history_fill, the same rows evaluation
leaves) and PostgreSQL for the runs: the run table's secondary indexes are dropped first and built
again after, so ten million rows take minutes.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from bench.services import log

LOCATIONS = ["sacramento", "atlanta"]
SEED_INTERVAL_S = 30
# Runs are spread over the retention period (VIGIE_RUN_RETENTION_DAYS, 30 by default), less a
# margin so that the pruning task finds nothing to delete while the bench measures.
RUNS_SPAN_DAYS = 29


def layout_create(*, now: datetime, platforms: int, components: int, sandbox_url: str, prober_token: str,
                  partner_token: str) -> None:
    """`platforms` sandbox platforms, each with its components, one read probe per component at
    every location, placements that have existed for more than the year of history."""
    from probes.models import Account, Location, Platform, Probe, ProbeLocation
    from detection.models import Component, ComponentGroup

    created_at = now - timedelta(days=400)
    places = [Location.objects.create(name=name, created_at=created_at) for name in LOCATIONS]
    made = []
    for p in range(platforms):
        platform = Platform.objects.create(name=f"Platform {p}", slug=f"platform-{p}", kind="sandbox",
                                           base_url=sandbox_url, created_at=created_at)
        Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=prober_token)
        Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=partner_token)
        group = ComponentGroup.objects.create(name=f"Platform {p}", position=p)
        made.append((platform, group))
    for c in range(components):
        platform, group = made[c % platforms]
        probe = Probe.objects.create(name=f"Read {c}", slug=f"read-{c}", platform=platform, action="read",
                                     interval_s=SEED_INTERVAL_S, timeout_s=10, latency_threshold_ms=2000)
        for location in places:
            # Staggered on the grid, as a long-running dispatcher leaves them.
            ProbeLocation.objects.create(probe=probe, location=location, created_at=created_at,
                                         next_run_at=now + timedelta(seconds=(c * 7) % SEED_INTERVAL_S))
        component = Component.objects.create(name=f"Component {c}", position=c, group=group, created_at=created_at)
        component.probes.add(probe)


def history_create(*, now: datetime, days: int = 365) -> dict:
    from detection.models import Component, ComponentStatus
    from detection.simulation import history_fill
    from probes.models import ProbeLocation

    made = history_fill(days=days, now=now, seed=7)
    # Measured, as a running engine leaves them: a component never measured is "unknown" (no green
    # before measured), and the Statuspage JSON leaves it out (summary.json: 281 bytes, not 22 KB).
    Component.objects.filter(status=ComponentStatus.UNKNOWN).update(status=ComponentStatus.OPERATIONAL)
    ProbeLocation.objects.update(last_run_at=now)
    return made


RUN_INSERT = """
INSERT INTO probes_run (key, probe_id, location_id, scheduled_for, started_at, finished_at, latency_ms, outcome,
                        failure_class, error, steps, evidence, cleanup, recorded_at)
SELECT gen_random_uuid(), p.probe_id, p.location_id,
       t, t + make_interval(secs => (i %% 50) / 1000.0),
       t + make_interval(secs => (i %% 50 + 90 + (i * 7919) %% 160) / 1000.0),
       90 + (i * 7919) %% 160,
       CASE WHEN (i + p.n) %% 97 = 0 THEN 'failure' ELSE 'success' END,
       CASE WHEN (i + p.n) %% 97 = 0 THEN 'server_error' ELSE '' END,
       CASE WHEN (i + p.n) %% 97 = 0 THEN 'GET /api/v1/timelines/home answered 500: Internal server error' ELSE '' END,
       jsonb_build_array(jsonb_build_object('name', 'home timeline', 'method', 'GET',
                                            'path', '/api/v1/timelines/home',
                                            'status', CASE WHEN (i + p.n) %% 97 = 0 THEN 500 ELSE 200 END,
                                            'ms', 90 + (i * 7919) %% 160, 'ok', (i + p.n) %% 97 <> 0, 'note', '')),
       '{"cleanup_steps": []}'::jsonb,
       'none',
       t + make_interval(secs => (i %% 50 + 100 + (i * 7919) %% 160) / 1000.0)
FROM bench_placements p, generate_series(%(first)s, %(last)s) AS i,
     LATERAL (SELECT %(since)s::timestamptz + make_interval(secs => i * %(step)s + p.n * %(offset)s)) AS at(t)
"""


def runs_create(*, total: int, now: datetime, batch: int = 1_000_000) -> dict:
    """`total` runs spread evenly over the placements and the last RUNS_SPAN_DAYS days, written in
    batches of about `batch` rows, with the secondary indexes of the run table rebuilt after."""
    from django.db import connection

    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        cursor.execute("CREATE TEMP TABLE bench_placements AS SELECT probe_id, location_id, "
                       "row_number() OVER (ORDER BY id) - 1 AS n FROM probes_probelocation")
        cursor.execute("SELECT count(*) FROM bench_placements")
        placements = cursor.fetchone()[0]
        per_placement = max(1, total // placements)
        span = timedelta(days=RUNS_SPAN_DAYS).total_seconds()
        step = span / per_placement
        since = now - timedelta(days=RUNS_SPAN_DAYS)

        # Secondary indexes and unique constraints of the run table, to build again after.
        cursor.execute("""SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                          WHERE conrelid = 'probes_run'::regclass AND contype = 'u'""")
        constraints = cursor.fetchall()
        cursor.execute("""SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'probes_run'
                          AND indexname NOT IN (SELECT conname FROM pg_constraint
                                                WHERE conrelid = 'probes_run'::regclass)""")
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE probes_run DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')

        rows_per_batch = max(1, batch // placements)
        first = 0
        while first < per_placement:
            last = min(per_placement, first + rows_per_batch) - 1
            cursor.execute(RUN_INSERT, {"first": first, "last": last, "since": since, "step": step,
                                        "offset": step / placements})
            first = last + 1
            log(f"  runs: {first * placements:,} of {per_placement * placements:,} "
                f"({time.monotonic() - began:.0f} s)")
        inserted = time.monotonic() - began
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE probes_run ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            cursor.execute(definition)
        # As a table in service is: its statistics taken and its pages marked visible, rather than
        # autovacuum doing it under the measurements that follow.
        cursor.execute("VACUUM ANALYZE probes_run")
        cursor.execute("SELECT pg_total_relation_size('probes_run')")
        size = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_placements")
    return {"runs": per_placement * placements, "insert_s": inserted, "total_s": time.monotonic() - began,
            "bytes": size}
