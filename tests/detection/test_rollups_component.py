"""Daily and per-component rollups: kept up to date run by run and change by change, they equal the
same rollups rebuilt from scratch, and uptime read from them equals uptime spread from the status
rows, to the second, across daylight-saving changes."""
from __future__ import annotations

import calendar
import struct
import threading
import zlib
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from detection.evaluation import component_set_status
from detection.models import (Component, ComponentDay, ComponentHour, ComponentMonth, ComponentStatus,
                              ComponentStatusChange)
from probes.models import Location, Outcome, Platform, Probe, ProbeLocation, Run, RunDay, RunHour
from detection.rollups import (bucket_of, component_months_rebuild, rollups_add, rollups_rebuild, seconds_unpack,
                               status_interval_add)
from detection.uptime import Day, uptime_bars

T0 = datetime(2026, 10, 23, 7, 30, tzinfo=dt_timezone.utc)  # two days before Paris leaves summer time
STATUSES = [ComponentStatus.OPERATIONAL, ComponentStatus.DEGRADED, ComponentStatus.PARTIAL, ComponentStatus.MAJOR,
            ComponentStatus.MAINTENANCE]
SECONDS = ["observed_s", "major_s", "partial_s", "degraded_s", "maintenance_s"]
SLOW = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# Status histories: (seconds after the previous change, negative for one that arrives late and is
# clamped; the new status).
histories = st.lists(st.tuples(st.one_of(st.integers(-7200, 0), st.integers(1, 3 * 86400),
                                         st.floats(0.001, 4000, allow_nan=False)),
                               st.sampled_from(STATUSES)), max_size=10)


# --- the oracle: uptime as it was computed before the rollups, from every status row -----------

def bars_from_status_rows(components: list[Component], *, now: datetime, days: int) -> dict[int, list[Day]]:
    """Every status row of the window, each interval spread over every day at request time."""
    zone = ZoneInfo(django_settings.TIME_ZONE)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    bounds = [datetime.combine(first + timedelta(days=i), datetime.min.time(), tzinfo=zone)
              .astimezone(dt_timezone.utc) for i in range(days + 1)]
    window_start = bounds[0]
    changes = defaultdict(list)
    for component_id, at, old, new in (ComponentStatusChange.objects.filter(component__in=components,
                                                                             changed_at__gte=window_start)
                                       .order_by("changed_at", "id")
                                       .values_list("component_id", "changed_at", "old_status", "new_status")):
        changes[component_id].append((at, old, new))
    bars = {}
    for component in components:
        rows = changes.get(component.id, [])
        status = rows[0][1] if rows else component.status
        start = max(window_start, component.created_at)
        intervals = []
        for at, _old, new in rows:
            if at > start:
                intervals.append((start, at, status))
            start, status = max(start, at), new
        if now > start:
            intervals.append((start, now, status))
        cells = [Day(date=first + timedelta(days=i)) for i in range(days)]
        for begin, end, state in intervals:
            for i, cell in enumerate(cells):
                overlap = (min(end, bounds[i + 1]) - max(begin, bounds[i])).total_seconds()
                if overlap <= 0:
                    continue
                cell.observed_s += overlap
                name = {ComponentStatus.MAJOR: "major_s", ComponentStatus.PARTIAL: "partial_s",
                        ComponentStatus.DEGRADED: "degraded_s", ComponentStatus.MAINTENANCE: "maintenance_s"}.get(state)
                if name:
                    setattr(cell, name, getattr(cell, name) + overlap)
        bars[component.id] = cells
    return bars


def play(component: Component, history: list, start: datetime) -> datetime:
    """Apply a status history through component_set_status, as evaluation does; returns the last time."""
    at = start
    for gap, status in history:
        at += timedelta(seconds=gap)
        component_set_status(component=component, status=status, reason="test", at=at)
    return at


def snapshot() -> dict:
    """Every rollup row and every component's status_since, by key, without ids."""
    out = {}
    for model, key in ((RunHour, ("probe_id", "location_id", "hour")), (RunDay, ("probe_id", "location_id", "day")),
                       (ComponentHour, ("component_id", "hour")), (ComponentDay, ("component_id", "day"))):
        for row in model.objects.values():
            row.pop("id")
            out[(model.__name__, *(row.pop(k) for k in key))] = row
    for component_id, since in Component.objects.values_list("id", "status_since"):
        out["since", component_id] = since
    return out


def months() -> dict:
    """Every ComponentMonth row's floats by (component id, month), months without seconds left out."""
    out = {(c, m): list(seconds_unpack(blob)) for c, m, blob in
           ComponentMonth.objects.values_list("component_id", "month", "seconds")}
    return {key: values for key, values in out.items() if any(values)}


def months_from_days() -> dict:
    """The same, recomputed from scratch from the ComponentDay rows: what ComponentMonth must hold."""
    out: dict = {}
    for c, day, *seconds in ComponentDay.objects.values_list("component_id", "day", *SECONDS):
        values = out.setdefault((c, day.replace(day=1)), [0.0] * 5 * calendar.monthrange(day.year, day.month)[1])
        values[(day.day - 1) * 5:day.day * 5] = seconds
    return {key: values for key, values in out.items() if any(values)}


def assert_same_days(mine: list[Day], theirs: list[Day]) -> None:
    assert [d.date for d in mine] == [d.date for d in theirs]
    for a, b in zip(mine, theirs):
        for name in SECONDS:
            assert getattr(a, name) == getattr(b, name), (a.date, name)


def layout() -> tuple[list[ProbeLocation], list[Component]]:
    """Two probes at two locations; one component fed by both, one by the first only."""
    platform = Platform.objects.create(name="P", slug="p", kind="sandbox", base_url="http://127.0.0.1:1")
    post = Probe.objects.create(name="Post", slug="post", platform=platform, action="post")
    read = Probe.objects.create(name="Read", slug="read", platform=platform, action="read")
    places = [Location.objects.create(name="atlanta"), Location.objects.create(name="sacramento")]
    placements = [ProbeLocation.objects.create(probe=probe, location=loc) for probe in (post, read) for loc in places]
    both = Component.objects.create(name="Everything", created_at=T0 - timedelta(days=2), status="operational")
    both.probes.add(post, read)
    posting = Component.objects.create(name="Posting", created_at=T0 - timedelta(days=2), status="operational")
    posting.probes.add(post)
    return placements, [both, posting]


def run(placement: ProbeLocation, started_at: datetime, failure_class: str = "", latency_ms: int = 100) -> Run:
    """A run as evaluation sees it (rollups need no saved row)."""
    return Run(probe_id=placement.probe_id, location_id=placement.location_id, started_at=started_at,
               outcome=Outcome.FAILURE if failure_class else Outcome.SUCCESS, failure_class=failure_class,
               latency_ms=latency_ms)


runs_strategy = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4 * 86400), st.sampled_from(["", "", "timeout",
                                                                                                  "server_error"]),
                                   st.integers(1, 20000)), min_size=1, max_size=40)


def make_runs(placements, spec) -> list[Run]:
    return [run(placements[i], T0 + timedelta(seconds=s), failure_class=f, latency_ms=ms) for i, s, f, ms in spec]


# --- runs -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_run_counts_in_its_place_hour_and_day_and_in_each_component_its_probe_feeds(settings):
    settings.TIME_ZONE = "Europe/Paris"
    placements, (both, posting) = layout()
    late = datetime(2026, 10, 23, 22, 30, tzinfo=dt_timezone.utc)  # 00:30 on the 24th in Paris
    rollups_add([run(placements[0], late), run(placements[1], late, "timeout"), run(placements[2], late, "", 300)])
    first = RunDay.objects.get(probe_id=placements[0].probe_id, location_id=placements[0].location_id)
    assert first.day == date(2026, 10, 24)
    day = ComponentDay.objects.get(component=both)
    assert (day.day, day.runs, day.failures, day.by_class) == (date(2026, 10, 24), 3, 1, {"timeout": 1})
    assert day.latency == {str(bucket_of(100)): 1, str(bucket_of(300)): 1}
    hour = ComponentHour.objects.get(component=posting)
    assert (hour.hour, hour.runs, hour.failures) == (late.replace(minute=0), 2, 1)  # not the read probe's run


@pytest.mark.django_db
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(spec=runs_strategy)
def test_a_batch_counts_exactly_as_its_runs_one_by_one(spec):
    with transaction.atomic():
        placements, _ = layout()
        runs = make_runs(placements, spec)
        with transaction.atomic():
            rollups_add(runs)
            batched = snapshot()
            transaction.set_rollback(True)
        with transaction.atomic():
            for one in runs:
                rollups_add([one])
            assert snapshot() == batched
            transaction.set_rollback(True)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_batch_costs_the_queries_of_one_run():
    placements, _ = layout()
    rollups_add([run(placements[0], T0), run(placements[1], T0)])  # the rows exist from here on

    def queries(runs):
        with CaptureQueriesContext(connection) as captured:
            rollups_add(runs)
        return len(captured)

    one = queries([run(placements[0], T0 + timedelta(minutes=1))])
    many = queries([run(p, T0 + timedelta(seconds=s), "timeout" if s % 7 == 0 else "") for s in range(60, 1500, 30)
                    for p in placements[:2]])  # in the same hour: rows to update, none to create
    assert one == many <= 9  # the components, then a read and a write for each of the four tables


# --- status seconds -------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_status_change_counts_the_interval_it_closes_in_hours_and_in_a_25_hour_day(settings):
    settings.TIME_ZONE = "Europe/Paris"  # 25 Oct 2026: 03:00 CEST becomes 02:00 CET
    _, (component, _) = layout()
    midnight = datetime(2026, 10, 24, 22, tzinfo=dt_timezone.utc)  # 00:00 on the 25th in Paris
    component_set_status(component=component, status=ComponentStatus.MAJOR, reason="t", at=midnight)
    component_set_status(component=component, status=ComponentStatus.OPERATIONAL, reason="t",
                         at=midnight + timedelta(hours=25))
    day = ComponentDay.objects.get(component=component, day=date(2026, 10, 25))
    assert (day.observed_s, day.major_s) == (25 * 3600, 25 * 3600) and day.down_s == 25 * 3600
    hours = ComponentHour.objects.filter(component=component, major_s__gt=0)
    assert hours.count() == 25 and all(h.major_s == 3600 for h in hours)
    component.refresh_from_db()
    assert component.status_since == midnight + timedelta(hours=25)
    # The time before the outage, operational since creation, was closed by the first change.
    assert ComponentDay.objects.get(component=component, day=date(2026, 10, 24)).observed_s == 24 * 3600


@pytest.mark.django_db
@hypothesis_settings(max_examples=50, deadline=None, suppress_health_check=SLOW)
@given(history=histories, zone=st.sampled_from(["Europe/Paris", "Asia/Kolkata", "America/Los_Angeles"]),
       created=st.integers(-3 * 86400, 86400), now=st.integers(-86400, 6 * 86400), days=st.sampled_from([2, 5, 90]))
def test_uptime_from_the_rollups_equals_uptime_spread_from_the_status_rows(history, zone, created, now, days):
    with transaction.atomic(), override_settings(TIME_ZONE=zone):
        component = Component.objects.create(name="C", created_at=T0 + timedelta(seconds=created), status="operational")
        play(component, history, T0)
        at = T0 + timedelta(seconds=now)
        component = Component.objects.get(id=component.id)
        assert_same_days(uptime_bars([component], now=at, days=days)[component.id].days,
                         bars_from_status_rows([component], now=at, days=days)[component.id])
        transaction.set_rollback(True)


@pytest.mark.django_db
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=SLOW)
@given(history=histories, other=histories, spec=runs_strategy)
def test_rollups_kept_up_to_date_equal_rollups_rebuilt_from_scratch(history, other, spec):
    with transaction.atomic(), override_settings(TIME_ZONE="Europe/Paris"):
        placements, (both, posting) = layout()
        runs = make_runs(placements, spec)
        rollups_add(runs[: len(runs) // 2])
        play(both, history, T0)
        play(posting, other, T0 + timedelta(hours=5))
        rollups_add(runs[len(runs) // 2:])
        kept = snapshot()
        assert months() == months_from_days()  # kept up to date too, exactly (the same floats)
        rollups_rebuild()
        rebuilt = snapshot()
        assert months() == months_from_days()
        assert rebuilt.keys() == kept.keys()
        for key, row in kept.items():
            if isinstance(row, dict):
                assert {k: pytest.approx(v, abs=1e-6) if isinstance(v, float) else v for k, v in row.items()} \
                    == rebuilt[key], key
            else:
                assert row == rebuilt[key], key
        transaction.set_rollback(True)


# --- the migration ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_new_rollups_from_the_rows_already_there(settings):
    settings.TIME_ZONE = "Europe/Paris"
    before, after = [("probes", "0004_probe_script")], [("probes", "0005_rollups")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        platform = old.get_model("probes", "Platform").objects.create(name="P", slug="p", kind="sandbox",
                                                                      base_url="http://127.0.0.1:1")
        probe = old.get_model("probes", "Probe").objects.create(name="Post", slug="post", platform=platform,
                                                                action="post")
        location = old.get_model("probes", "Location").objects.create(name="atlanta")
        component = old.get_model("probes", "Component").objects.create(name="Posting", public_id="posting00001",
                                                                        created_at=T0 - timedelta(days=2))
        component.probes.add(probe)
        hours = [T0 + timedelta(hours=h) for h in (0, 1, 16, 17)]  # 17:30 UTC is the 24th in Paris
        old.get_model("probes", "RunHour").objects.bulk_create([
            old.get_model("probes", "RunHour")(probe=probe, location=location, hour=hour.replace(minute=0), runs=60,
                                               failures=2, by_class={"timeout": 2}, latency={"27": 58})
            for hour in hours])
        changes = [(T0, "operational", "major_outage"), (T0 + timedelta(hours=3), "major_outage", "partial_outage"),
                   (T0 + timedelta(days=2), "partial_outage", "operational")]
        old.get_model("probes", "ComponentStatusChange").objects.bulk_create([
            old.get_model("probes", "ComponentStatusChange")(component=component, old_status=a, new_status=b,
                                                             reason="t", changed_at=at) for at, a, b in changes])
        old.get_model("probes", "Component").objects.filter(id=component.id).update(status="operational")

        executor = MigrationExecutor(connection)
        executor.migrate(after)

        # Fields added by later migrations (detection 0003's name translations) are not there yet.
        posting = Component.objects.defer("name_translations").get(id=component.id)
        assert posting.status_since == T0 + timedelta(days=2)
        days = {d.day: d for d in RunDay.objects.all()}
        assert {day: (d.runs, d.failures) for day, d in days.items()} == {date(2026, 10, 23): (120, 4),
                                                                         date(2026, 10, 24): (120, 4)}
        assert ComponentHour.objects.get(component=posting, hour=T0.replace(minute=0)).runs == 60
        assert ComponentDay.objects.get(component=posting, day=date(2026, 10, 23)).major_s == 3 * 3600
        # The uptime bars read the days by month, a table of later migrations that fill it from them
        # (0007) in the format the bars read (0008).
        executor = MigrationExecutor(connection)
        executor.migrate([("detection", "0008_component_month_compressed")])
        posting = Component.objects.defer("name_translations").get(id=component.id)
        now = T0 + timedelta(days=3)
        assert_same_days(uptime_bars([posting], now=now, days=10)[posting.id].days,
                         bars_from_status_rows([posting], now=now, days=10)[posting.id])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_months_migrations_write_todays_bytes_whatever_detection_rollups_becomes(monkeypatch):
    """detection 0007 fills ComponentMonth with its own copy of its format (plain little-endian
    floats), 0008 compresses those rows: run while detection.rollups packs another way (as a later
    version may), they still write, from the same days, byte for byte what component_months_rebuild
    writes today, in months of 28 to 31 days."""
    before = [("detection", "0006_own_problems_collision_lost_deletes")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        with pytest.raises(LookupError):
            old.get_model("detection", "ComponentMonth")  # not made yet
        old_component, old_day = old.get_model("detection", "Component"), old.get_model("detection", "ComponentDay")
        posting = old_component.objects.create(name="Posting", public_id="posting00001")
        reading = old_component.objects.create(name="Reading", public_id="reading00001")
        days = [(posting, date(2024, 2, 1)), (posting, date(2024, 2, 29)), (posting, date(2026, 10, 31)),
                (posting, date(2026, 11, 1)), (reading, date(2026, 11, 30)), (reading, date(2027, 2, 14))]
        old_day.objects.bulk_create([
            old_day(component=component, day=day, observed_s=86400 - i / 3, major_s=i * 0.1, partial_s=1 / 7,
                    degraded_s=i * 1e-9, maintenance_s=3600.5 * i) for i, (component, day) in enumerate(days)])

        with monkeypatch.context() as later:
            later.setattr("detection.rollups.SECONDS_FIELDS", ["maintenance_s", "degraded_s", "partial_s", "major_s",
                                                               "observed_s"])
            later.setattr("detection.rollups.seconds_pack", lambda values: struct.pack(f">{len(values)}d", *values))
            executor = MigrationExecutor(connection)
            executor.migrate([("detection", "0007_component_month")])

        def rows() -> dict:
            return {(c, m): bytes(blob) for c, m, blob in
                    ComponentMonth.objects.values_list("component_id", "month", "seconds")}

        migrated = rows()
        assert len(migrated) == 5
        # 0007's format: plain little-endian floats, the floats of the days.
        executor = MigrationExecutor(connection)
        executor.migrate([("detection", "0008_component_month_compressed")])
        compressed = rows()  # 0008: those rows compressed as they were
        assert component_months_rebuild() == 5
        assert rows() == compressed  # byte for byte what today's code writes from the days
        assert {key: struct.pack(f"<{len(v)}d", *v) for key, blob in compressed.items()
                for v in [seconds_unpack(blob)]} == migrated
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_the_compressing_migration_leaves_rows_already_compressed_as_they_are():
    """0008 run over rows written in both formats (new code may write months before it runs)
    compresses only the plain ones; run back, it restores only those. Run twice, it changes nothing."""
    from importlib import import_module

    from django.apps import apps

    step = import_module("detection.migrations.0008_component_month_compressed")
    posting = Component.objects.create(name="Posting")
    reading = Component.objects.create(name="Reading")
    floats = [86400.0, 0.0, 0.5, 0.0, 0.0] * 31
    plain = struct.pack(f"<{len(floats)}d", *floats)
    ComponentMonth.objects.create(component=posting, month=date(2026, 10, 1), seconds=plain)
    ComponentMonth.objects.create(component=reading, month=date(2026, 10, 1), seconds=zlib.compress(plain, 1))

    def stored() -> list[bytes]:
        return [bytes(v) for v in ComponentMonth.objects.order_by("component_id").values_list("seconds", flat=True)]

    step.compress(apps, None)
    assert stored() == [zlib.compress(plain, 1)] * 2
    step.compress(apps, None)
    assert stored() == [zlib.compress(plain, 1)] * 2
    assert [list(seconds_unpack(v)) for v in stored()] == [floats, floats]
    step.decompress(apps, None)
    assert stored() == [plain, plain]


# --- concurrency -----------------------------------------------------------------------------

@pytest.mark.postgres  # SQLite runs one writer at a time
@pytest.mark.django_db(transaction=True)
def test_two_workers_counting_into_the_same_rows_at_once_lose_no_run():
    placements, (both, posting) = layout()
    feeds = {placements[0].probe_id: [both.id, posting.id], placements[2].probe_id: [both.id]}
    rounds = 8
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def worker(placement: ProbeLocation) -> None:
        try:
            for i in [*range(rounds), *range(rounds)]:
                # Both at once into the same component rows: of a new hour, then of one that exists.
                barrier.wait()
                with transaction.atomic():
                    # Without the component locks (feeds given) the rows themselves must hold.
                    hour = T0 + timedelta(hours=i)
                    rollups_add([run(placement, hour), run(placement, hour + timedelta(minutes=1), "timeout")],
                                feeds=feeds)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(p,)) for p in (placements[0], placements[2])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert [h.runs for h in ComponentHour.objects.filter(component=both).order_by("hour")] == [8] * rounds
    assert [h.by_class for h in ComponentHour.objects.filter(component=both)] == [{"timeout": 4}] * rounds
    assert sum(ComponentDay.objects.filter(component=posting).values_list("runs", flat=True)) == 4 * rounds


def _writer(body, errors: list, done: threading.Event | None = None) -> threading.Thread:
    """A thread running `body` on a connection of its own: what it raises goes to `errors`, and
    `done` is set however it ends (the other writer waits on it)."""
    def run() -> None:
        try:
            body()
        except BaseException as exc:
            errors.append(exc)
        finally:
            if done is not None:
                done.set()
            connection.close()
    return threading.Thread(target=run)


@pytest.mark.postgres  # SQLite runs one writer at a time
@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_month_at_once_leave_it_equal_to_its_days():
    """ComponentMonth is rewritten from the days after each change: a transaction that changes
    other days of a month while another has changed some and not committed yet (without the
    component's lock, which would order them) waits for it, and the month holds both, as
    recomputed from scratch."""
    _, (component, _) = layout()
    november = datetime(2026, 11, 1, tzinfo=dt_timezone.utc)
    status_interval_add(component.id, ComponentStatus.OPERATIONAL, november, november + timedelta(hours=1))
    written, errors = threading.Event(), []

    def first() -> None:
        with transaction.atomic():
            # Into the next month as well: two month rows, locked in order.
            status_interval_add(component.id, ComponentStatus.MAJOR, november + timedelta(days=29, hours=12),
                                november + timedelta(days=30, hours=6))
            written.set()
            # Long enough for the second to read the days before this commits, were it not waiting.
            threading.Event().wait(0.5)

    def second() -> None:
        written.wait(30)
        with transaction.atomic():
            status_interval_add(component.id, ComponentStatus.PARTIAL, november + timedelta(days=10),
                                november + timedelta(days=10, hours=2))

    threads = [_writer(first, errors, done=written), _writer(second, errors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    kept = months()
    assert sorted(m for _, m in kept) == [date(2026, 11, 1), date(2026, 12, 1)]
    assert kept == months_from_days()
    days = kept[component.id, date(2026, 11, 1)]
    assert days[29 * 5 + 1] == 12 * 3600 and days[10 * 5 + 2] == 2 * 3600  # the 30th's major, the 11th's partial


def _before_month_write(call):
    """An execute wrapper that calls `call()` just before the statement that writes ComponentMonth
    rows (component_months_refresh's bulk_update), after the days were read."""
    update = f"UPDATE {connection.ops.quote_name(ComponentMonth._meta.db_table)} "

    def wrapper(execute, sql, params, many, context):
        if sql.startswith(update):
            call()
        return execute(sql, params, many, context)
    return wrapper


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.postgres  # SQLite runs one writer at a time
@pytest.mark.django_db(transaction=True)
def test_a_writer_reads_a_months_days_only_after_the_writer_holding_its_row_commits():
    """The month's row exists already, so the insert that makes it missing waits for nobody: only
    the row lock orders two transactions that change different days of the month. The first has
    written its day and read the month's days, and stops before writing the month; the second
    then changes another day. With the lock the second waits for the first to commit before it
    reads the days, and the month holds both; without it the second reads the first's day as it
    was, and whichever writes the month last drops the other's day."""
    _, (component, _) = layout()
    november = datetime(2026, 11, 1, tzinfo=dt_timezone.utc)
    status_interval_add(component.id, ComponentStatus.OPERATIONAL, november, november + timedelta(hours=1))
    assert ComponentMonth.objects.filter(component=component).count() == 1
    first_paused, first_go, second_read = threading.Event(), threading.Event(), threading.Event()
    pids: dict[str, int] = {}
    errors: list[BaseException] = []

    def pause() -> None:
        first_paused.set()
        if not first_go.wait(10):
            raise TimeoutError("the first writer was never let go")

    def first() -> None:
        pids["first"] = _backend_pid()
        with connection.execute_wrapper(_before_month_write(pause)), transaction.atomic():
            status_interval_add(component.id, ComponentStatus.MAJOR, november + timedelta(days=4, hours=12),
                                november + timedelta(days=4, hours=14))

    def second() -> None:
        pids["second"] = _backend_pid()
        first_paused.wait(10)
        with connection.execute_wrapper(_before_month_write(second_read.set)), transaction.atomic():
            status_interval_add(component.id, ComponentStatus.PARTIAL, november + timedelta(days=19, hours=12),
                                november + timedelta(days=19, hours=15))

    threads = [_writer(first, errors, done=first_paused), _writer(second, errors, done=second_read)]
    for thread in threads:
        thread.start()
    try:
        assert first_paused.wait(10)
        # Let the first go once the second has read the days (nothing kept it out) or waits for the
        # first (the lock did): as the database shows it, not after a guessed delay.
        with connection.cursor() as cursor:
            for _ in range(5000):
                if second_read.wait(0.002):
                    break
                cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [pids["first"], pids.get("second", 0)])
                if cursor.fetchone()[0]:
                    break
            else:
                pytest.fail("the second writer neither read the days nor waited for the first")
    finally:
        first_go.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    kept = months()
    assert kept == months_from_days()
    days = kept[component.id, date(2026, 11, 1)]
    assert days[4 * 5 + 1] == 2 * 3600 and days[19 * 5 + 2] == 3 * 3600  # the 5th's major, the 20th's partial
