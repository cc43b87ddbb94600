"""Hourly and daily rollups of runs and of component status, kept up to date as they arrive.

Runs are counted per probe and location (RunHour, RunDay) and per component (ComponentHour,
ComponentDay): runs, failures by class and a latency histogram. Latencies go into logarithmic
buckets, four per doubling, so histograms of any hours, locations or probes add up exactly and a
percentile read from them is within 19% (one bucket) of the true value — plenty for a
response-time chart, and nothing grows with the number of runs.

A component's status is counted in seconds: each time it changes, the interval it leaves adds
its seconds to the hours and days it overlaps (`status_interval_add`). The interval still open,
from `Component.status_since` to now, is added by whoever reads (detection.uptime), so reading 90
days costs 90 rows per component however many changes they saw, and older history costs nothing.
The uptime bars read those seconds through ComponentMonth, a copy of a component's days by month
in one value each, rewritten from the days whenever they change: 4 rows per component for 90 days.

Days are calendar days of settings.TIME_ZONE, from its midnights (23 or 25 hours long when the
clocks change). Changing the time zone leaves past days on the old midnights until
`rollups_rebuild` runs.
"""
from __future__ import annotations

import calendar
import functools
import json
import math
import sys
import zlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone as dt_timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model, Q

from detection.models import Component, ComponentDay, ComponentHour, ComponentMonth, ComponentStatus
from probes.models import Outcome, Run, RunDay, RunHour

BUCKETS_PER_DOUBLING = 4
HOUR = timedelta(hours=1)
COUNT_FIELDS = ["runs", "failures", "by_class", "latency"]
SECONDS_FIELDS = ["observed_s", "major_s", "partial_s", "degraded_s", "maintenance_s"]
# The seconds field each status adds to besides `observed_s`; operational time is what is left.
STATUS_FIELDS = {ComponentStatus.MAJOR: "major_s", ComponentStatus.PARTIAL: "partial_s",
                 ComponentStatus.DEGRADED: "degraded_s", ComponentStatus.MAINTENANCE: "maintenance_s"}
# Rows locked and written per statement: bounds the parameters of one query on every database.
CHUNK = 400


def bucket_of(latency_ms: int) -> int:
    """Bucket index of a latency: bucket b holds (2^((b-1)/4), 2^(b/4)] ms; bucket 0 holds ≤ 1 ms."""
    if latency_ms <= 1:
        return 0
    return math.ceil(math.log2(latency_ms) * BUCKETS_PER_DOUBLING - 1e-9)


def bucket_upper_ms(bucket: int) -> float:
    return 2 ** (bucket / BUCKETS_PER_DOUBLING)


def hour_of(when: datetime) -> datetime:
    return when.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def page_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def day_of(when: datetime, zone: ZoneInfo) -> date:
    return when.astimezone(zone).date()


def midnights(first: date, count: int, zone: ZoneInfo) -> list[datetime]:
    """Local midnights from `first`, `count` + 1 of them (each day's start and the last day's end),
    in UTC: arithmetic on aware datetimes of one zone is wall-clock time, which would make the
    days around a daylight-saving change 24 hours long instead of 23 or 25."""
    return [datetime.combine(first + timedelta(days=i), datetime.min.time(), tzinfo=zone).astimezone(dt_timezone.utc)
            for i in range(count + 1)]


# --- what one row receives, gathered in memory -------------------------------------------------

@dataclass
class Counts:
    """Runs to add to one rollup row."""

    runs: int = 0
    failures: int = 0
    by_class: Counter = field(default_factory=Counter)
    latency: Counter = field(default_factory=Counter)

    def add_run(self, run: Run) -> None:
        self.runs += 1
        if run.outcome == Outcome.FAILURE:
            self.failures += 1
            self.by_class[run.failure_class] += 1
        else:  # failed runs stay out of the response times
            self.latency[str(bucket_of(run.latency_ms))] += 1

    def add_row(self, runs: int, failures: int, by_class: dict, latency: dict) -> None:
        self.runs += runs
        self.failures += failures
        self.by_class.update(by_class)
        self.latency.update(latency)

    def apply(self, row: Model) -> None:
        row.runs += self.runs
        row.failures += self.failures
        row.by_class = _merged(row.by_class, self.by_class)
        row.latency = _merged(row.latency, self.latency)


def _merged(counts: dict, more: Counter) -> dict:
    merged = dict(counts)
    for key, n in more.items():
        merged[key] = merged.get(key, 0) + n
    return merged


@dataclass
class Seconds:
    """Status seconds to add to one rollup row, in the order the intervals happened: float sums
    then come out the same whether a row was kept up to date or rebuilt."""

    observed_s: float = 0.0
    major_s: float = 0.0
    partial_s: float = 0.0
    degraded_s: float = 0.0
    maintenance_s: float = 0.0

    def add(self, status: str, seconds: float) -> None:
        add_status_seconds(self, status, seconds)


def add_status_seconds(target, status: str, seconds: float) -> None:
    """Add `seconds` in `status` to a Seconds or a StatusSeconds row (detection.uptime._spread adds
    to a bar's array by the same rules)."""
    if status == ComponentStatus.UNKNOWN:
        return  # time without measurement is no data: neither up nor down, not observed
    target.observed_s += seconds
    name = STATUS_FIELDS.get(status)
    if name:
        setattr(target, name, getattr(target, name) + seconds)


def status_pieces(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[dict[datetime, float], dict[date, float]]:
    """Seconds of [start, end) in each UTC hour and in each local day it overlaps. The day
    overlaps are computed as detection.uptime spreads an interval, so they are the same floats."""
    hours = {}
    hour = hour_of(start)
    while hour < end:
        overlap = (min(end, hour + HOUR) - max(start, hour)).total_seconds()
        if overlap > 0:
            hours[hour] = overlap
        hour += HOUR
    first = day_of(start, zone)
    bounds = midnights(first, (day_of(end, zone) - first).days + 1, zone)
    days = {}
    for i in range(len(bounds) - 1):
        overlap = (min(end, bounds[i + 1]) - max(start, bounds[i])).total_seconds()
        if overlap > 0:
            days[first + timedelta(days=i)] = overlap
    return hours, days


# --- writing rows ------------------------------------------------------------------------------

class _Row(SimpleNamespace):
    """A rollup row as _rows_apply changes and rows_write writes it: its id and the fields read,
    as attributes. Not a model instance: building those (and sending their init signals) for the
    few hundred rows of a batch was a tenth of storing and evaluating it."""

    @property
    def pk(self) -> int:
        return self.id


def _locked(model: type[Model], key_fields: tuple[str, ...], keys: list[tuple],
            fields: list[str]) -> dict[tuple, _Row]:
    """The existing rows of `keys`, locked in key order, by their key."""
    names = ("id", *key_fields, *fields)
    rows = model.objects.select_for_update().filter(_exactly(key_fields, keys)).values_list(*names)
    if len(keys) > 1:
        rows = rows.order_by(*key_fields)
    width = len(key_fields)
    return {values[1:1 + width]: _Row(**dict(zip(names, values))) for values in rows}


def _exactly(key_fields: tuple[str, ...], keys: list[tuple]) -> Q:
    """A filter for exactly `keys`, in few terms (building them is most of a query's cost): the
    field with the most values goes in an IN, grouped by the others. A worker's batch is one
    location and an hour or two, so its probes' rows are one term."""
    wide = max(range(len(key_fields)), key=lambda i: len({key[i] for key in keys}))
    others = key_fields[:wide] + key_fields[wide + 1:]
    groups = defaultdict(list)
    for key in keys:
        groups[key[:wide] + key[wide + 1:]].append(key[wide])
    where = Q()
    for values, spread in groups.items():
        where |= Q(**dict(zip(others, values)), **{f"{key_fields[wide]}__in": spread})
    return where


def rows_write(model: type[Model], rows: list[Model], fields: list[str]) -> None:
    """Write `fields` of `rows` back: one UPDATE by id, executed for every row at once (psycopg
    pipelines them). Cheaper than bulk_update, which builds a CASE expression per row and field:
    for a batch of 160 placements, bulk_update was 60 % of storing and evaluating the batch."""
    columns = [model._meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(model._meta.db_table)} SET {', '.join(f'{quote(c.column)} = %s' for c in columns)} "
           f"WHERE {quote(model._meta.pk.column)} = %s")
    prepare = [_prepare(c) for c in columns]
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[p(getattr(row, c.attname)) for c, p in zip(columns, prepare)] + [row.pk]
                                 for row in rows])


# Field types whose value, as evaluation and the rollups set it (an int, a str, a bool, an aware
# datetime or None), PostgreSQL's driver takes as it is: Django's get_db_prep_save would return the
# very same value after a chain of checks, per row and field — a third of writing the rows back
# (py-spy, the engine bench). A value of any other type, any other field, and every field on other
# databases go through Django's own preparation.
_INTS = (int,)
_AS_IS = {"IntegerField": _INTS, "BigIntegerField": _INTS, "SmallIntegerField": _INTS, "PositiveIntegerField": _INTS,
          "PositiveSmallIntegerField": _INTS, "PositiveBigIntegerField": _INTS, "CharField": (str,),
          "TextField": (str,), "BooleanField": (bool,), "FloatField": (float,), "DateTimeField": (datetime,)}


def _prepare(field) -> Callable:
    prep = functools.partial(field.get_db_prep_save, connection=connection)
    kinds = _AS_IS.get(field.get_internal_type())
    if connection.vendor != "postgresql" or kinds is None:
        return prep

    def as_is(value):
        if value is None:
            return None
        if type(value) in kinds and (type(value) is not datetime or value.tzinfo is not None):
            return value
        return prep(value)
    return as_is


def _rows_apply(model: type[Model], key_fields: tuple[str, ...], changes: dict[tuple, object],
                apply: Callable[[Model, object], None], fields: list[str]) -> None:
    """Lock the row of each key, creating those missing, apply its change and write the rows back.
    Keys go in sorted order, so two transactions that touch the same rows lock them in the same
    order. Callers hold the lock that owns the rows (the placement for a probe's rows, the
    component for a component's), so those rarely wait here; the row locks and the unique keys
    keep the counts right for any caller that does not."""
    keys = sorted(changes)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        rows = _locked(model, key_fields, chunk, fields)
        missing = [key for key in chunk if key not in rows]
        if missing:
            # A row another transaction creates meanwhile is skipped here (after waiting for it to
            # commit) and locked by the second read.
            model.objects.bulk_create([model(**dict(zip(key_fields, key))) for key in missing], ignore_conflicts=True)
            rows.update(_locked(model, key_fields, missing, fields))
        for key in chunk:
            apply(rows[key], changes[key])
        rows_write(model, [rows[key] for key in chunk], fields)


def _json_sum(column: str) -> str:
    """SQL for the JSON object `column` of the row in place plus that of the row proposed
    (EXCLUDED), key by key — what Counts.apply does with _merged, in the database."""
    if connection.vendor == "postgresql":
        return (f"CASE WHEN EXCLUDED.{column} = '{{}}'::jsonb THEN _rollup.{column} ELSE "
                f"(SELECT COALESCE(jsonb_object_agg(k, n), '{{}}'::jsonb) FROM (SELECT k, SUM(n) AS n FROM ("
                f"SELECT key AS k, value::bigint AS n FROM jsonb_each_text(_rollup.{column}) UNION ALL "
                f"SELECT key, value::bigint FROM jsonb_each_text(EXCLUDED.{column})) AS u GROUP BY k) AS g) END")
    if connection.vendor == "sqlite":
        return (f"CASE WHEN excluded.{column} = '{{}}' THEN _rollup.{column} ELSE "
                f"(SELECT json_group_object(k, n) FROM (SELECT key AS k, SUM(value) AS n FROM ("
                f"SELECT key, value FROM json_each(_rollup.{column}) UNION ALL "
                f"SELECT key, value FROM json_each(excluded.{column})) GROUP BY key)) END")
    raise NotImplementedError(connection.vendor)  # rows_count_add checks first


def rows_count_add(model: type[Model], key_fields: tuple[str, ...], changes: dict[tuple, Counts]) -> None:
    """Add each key's Counts to its row, creating the rows missing: one INSERT … ON CONFLICT DO
    UPDATE per batch (PostgreSQL, SQLite ≥ 3.24), the counters added and the JSON counts merged
    key by key in the database. The same rows as _rows_apply with Counts.apply, in one round trip
    instead of a lock, a create, a second lock and a write back. Keys go in sorted order (the row
    locks ON CONFLICT takes come in that order, as _rows_apply's). Columns other than the key and
    the counts get their default on a new row and are left alone on an existing one."""
    if connection.vendor not in ("postgresql", "sqlite"):
        _rows_apply(model, key_fields, changes, lambda row, counts: counts.apply(row), COUNT_FIELDS)
        return
    quote = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {f.attname: f.get_default() for f in fields if f.attname not in key_fields}
    key_columns = [model._meta.get_field(name).column for name in key_fields]
    added = "{c} = _rollup.{c} + EXCLUDED.{c}"
    updates = ", ".join(added.format(c=quote(f.column)) if f.attname in ("runs", "failures")
                        else f"{quote(f.column)} = {_json_sum(quote(f.column))}"
                        for f in fields if f.attname in COUNT_FIELDS)
    head = f"INSERT INTO {quote(model._meta.db_table)} AS _rollup ({', '.join(quote(f.column) for f in fields)}) "
    tail = f" ON CONFLICT ({', '.join(quote(c) for c in key_columns)}) DO UPDATE SET {updates}"
    keys = sorted(changes)

    def values(key: tuple) -> dict:
        counts = changes[key]
        return {**defaults, **dict(zip(key_fields, key)), "runs": counts.runs, "failures": counts.failures,
                "by_class": dict(counts.by_class), "latency": dict(counts.latency)}

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array per column, unnested into rows: the statement's text is the same for any
            # number of rows, so the driver parses it once per process, not once per batch (a
            # VALUES list of a few hundred placeholders was most of the cost of sending it).
            columns = {f.attname: [] for f in fields}
            for key in keys:
                for name, value in values(key).items():
                    columns[name].append(json.dumps(value) if isinstance(value, dict) else value)
            arrays = ", ".join(f"%s::text[]::{f.db_type(connection)}[]" if f.get_internal_type() == "JSONField"
                               else f"%s::{f.db_type(connection)}[]" for f in fields)
            cursor.execute(f"{head}SELECT * FROM unnest({arrays}){tail}", [columns[f.attname] for f in fields])
            return
        prepare = [_prepare(f) for f in fields]
        row_sql = f"({', '.join(['%s'] * len(fields))})"
        size = max(1, min(CHUNK, connection.features.max_query_params // len(fields)))
        for start in range(0, len(keys), size):
            chunk = keys[start:start + size]
            params = []
            for key in chunk:
                row = values(key)
                params.extend(p(row[f.attname]) for f, p in zip(fields, prepare))
            cursor.execute(f"{head}VALUES {', '.join([row_sql] * len(chunk))}{tail}", params)


RUN_HOUR_KEY = ("probe_id", "location_id", "hour")
RUN_DAY_KEY = ("probe_id", "location_id", "day")
COMPONENT_HOUR_KEY = ("component_id", "hour")
COMPONENT_DAY_KEY = ("component_id", "day")


def _components_locked(probe_ids: set[int]) -> dict[int, list[int]]:
    """Probe id → ids of the components it feeds, locking those components in id order (the
    order of detection.evaluation): a component's rows are shared by all its probes, whichever
    platform they watch, and are only ever written under the component's lock."""
    components = defaultdict(list)
    for component_id, probe_id in (Component.objects.select_for_update(of=("self",))
                                   .filter(probes__id__in=probe_ids).order_by("id")
                                   .values_list("id", "probes__id")):
        components[probe_id].append(component_id)
    return components


def rollups_add(runs: list[Run], *, feeds: Mapping[int, list[int]] | None = None) -> None:
    """Count runs in every rollup they belong to: their probe and location's hour and day, and the
    hour and day of each component their probe feeds. The runs are added up in memory first, so
    each row is read and written once per call, whatever the number of runs.

    Call it once per run (a run counted twice stays counted twice), inside the evaluation
    transaction with the runs' placements locked. `feeds` (probe id → ids of the components it
    feeds) is for a caller that already holds those components locked; without it they are
    looked up and locked here."""
    if not runs:
        return
    zone = page_zone()
    with transaction.atomic(savepoint=False):
        components = feeds if feeds is not None else _components_locked({run.probe_id for run in runs})
        run_hours, run_days, component_hours, component_days = (defaultdict(Counts) for _ in range(4))
        for run in runs:
            hour, day = hour_of(run.started_at), day_of(run.started_at, zone)
            run_hours[run.probe_id, run.location_id, hour].add_run(run)
            run_days[run.probe_id, run.location_id, day].add_run(run)
            for component_id in components.get(run.probe_id, ()):
                component_hours[component_id, hour].add_run(run)
                component_days[component_id, day].add_run(run)
        for model, key_fields, changes in ((RunHour, RUN_HOUR_KEY, run_hours), (RunDay, RUN_DAY_KEY, run_days),
                                           (ComponentHour, COMPONENT_HOUR_KEY, component_hours),
                                           (ComponentDay, COMPONENT_DAY_KEY, component_days)):
            rows_count_add(model, key_fields, changes)


def rollup_add(run: Run) -> None:
    """Count one run (see rollups_add)."""
    rollups_add([run])


def status_interval_add(component_id: int, status: str, start: datetime, end: datetime) -> None:
    """Add the seconds from `start` to `end` that a component spent in `status` to its hours and
    days. Called by detection.evaluation.component_set_status as the component leaves `status`, with
    the component locked; intervals come in time order, one after the other."""
    if end <= start or status == ComponentStatus.UNKNOWN:
        return  # not observed (add_status_seconds)
    hours, days = status_pieces(start, end, page_zone())
    fields = ["observed_s", *([STATUS_FIELDS[status]] if status in STATUS_FIELDS else [])]

    def apply(row: Model, seconds: float) -> None:
        add_status_seconds(row, status, seconds)

    with transaction.atomic(savepoint=False):
        _rows_apply(ComponentHour, COMPONENT_HOUR_KEY, {(component_id, h): s for h, s in hours.items()}, apply, fields)
        _rows_apply(ComponentDay, COMPONENT_DAY_KEY, {(component_id, d): s for d, s in days.items()}, apply, fields)
        component_months_refresh({(component_id, month_of(d)) for d in days})


# --- the months the uptime bars read ------------------------------------------------------------

def month_of(day: date) -> date:
    return day.replace(day=1)


def _month_after(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


# A month's floats, uncompressed: the most a stored value may expand to (31 days × 5 × 8 bytes).
MONTH_BYTES = 31 * len(SECONDS_FIELDS) * 8


def seconds_pack(values: array) -> bytes:
    """ComponentMonth.seconds from its floats: little-endian (whatever the machine), compressed with
    zlib. Most days of a month are the same five floats (a day up: 86,400 observed, the rest 0), so
    a month's 1,240 bytes become ~90: PostgreSQL sends a bytea as hex text, and the 200 rows of a
    page's bars were 500 KB to send and decode at each render (docs/performance.md)."""
    if sys.byteorder == "big":
        values = array("d", values)
        values.byteswap()
    return zlib.compress(values.tobytes(), 1)


def seconds_unpack(blob: bytes | memoryview) -> array:
    """ComponentMonth.seconds as floats: five per day of the month from the 1st (SECONDS_FIELDS).
    A value in the plain format migration 0007 wrote (whole floats, not compressed: a row written
    by a process not yet on this version, or not yet converted by 0008) reads as what it is. Any
    other value that is not what seconds_pack writes (damaged: no writer leaves one) reads as
    fewer days, never as an error, and never expands past a month's floats."""
    values = array("d")
    blob = bytes(blob)
    try:
        raw = zlib.decompressobj().decompress(blob, MONTH_BYTES)
    except zlib.error:
        raw = blob[:MONTH_BYTES] if len(blob) % (8 * len(SECONDS_FIELDS)) == 0 else b""
    values.frombytes(raw[:len(raw) - len(raw) % values.itemsize])
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _month_values(month: date) -> array:
    return array("d", bytes(8 * len(SECONDS_FIELDS) * calendar.monthrange(month.year, month.month)[1]))


def component_months_refresh(keys: set[tuple[int, date]]) -> None:
    """Rewrite the ComponentMonth row of each (component id, first of month) from its ComponentDay
    rows, after they changed (in their transaction). Each row is created if missing, then locked,
    and only then are the days read: a writer that changed other days of the month and locked the
    row first has committed by then, so whichever writes last copies every day (in READ COMMITTED
    each statement sees what committed before it; PostgreSQL's insert that finds the row also
    waits for a transaction that is changing it). Days are locked before months, both in key
    order, by every writer: no lock waits in a cycle. Four queries, whatever the months."""
    if not keys:
        return
    keys = sorted(keys)
    ComponentMonth.objects.bulk_create([ComponentMonth(component_id=c, month=m, seconds=b"") for c, m in keys],
                                       ignore_conflicts=True)
    where = Q()
    for component_id, month in keys:
        where |= Q(component_id=component_id, month=month)
    rows = {(r.component_id, r.month): r for r in
            ComponentMonth.objects.select_for_update().filter(where).order_by("component_id", "month")
            .only("id", "component_id", "month")}
    values = {key: _month_values(key[1]) for key in keys}
    days = Q()
    for component_id, month in keys:
        days |= Q(component_id=component_id, day__gte=month, day__lt=_month_after(month))
    width = len(SECONDS_FIELDS)
    for component_id, day, *seconds in ComponentDay.objects.filter(days).values_list("component_id", "day",
                                                                                      *SECONDS_FIELDS):
        at = (day.day - 1) * width
        values[component_id, month_of(day)][at:at + width] = array("d", seconds)
    for key, row in rows.items():
        row.seconds = seconds_pack(values[key])
    ComponentMonth.objects.bulk_update(list(rows.values()), ["seconds"])


def component_months_rebuild(apps=None) -> int:
    """Every ComponentMonth row from the ComponentDay rows, from scratch (rollups_rebuild, with its
    `apps`). The migration that made the table has its own copy of this, frozen as it was then."""
    if apps is None:
        from django.apps import apps
    day_model, month_model = _model_of(apps, "ComponentDay"), _model_of(apps, "ComponentMonth")
    values: dict[tuple[int, date], array] = {}
    width = len(SECONDS_FIELDS)
    with transaction.atomic():
        month_model.objects.all().delete()
        for component_id, day, *seconds in (day_model.objects.order_by("component_id", "day")
                                            .values_list("component_id", "day", *SECONDS_FIELDS).iterator()):
            key = (component_id, month_of(day))
            if key not in values:
                values[key] = _month_values(key[1])
            at = (day.day - 1) * width
            values[key][at:at + width] = array("d", seconds)
        return len(month_model.objects.bulk_create(
            [month_model(component_id=c, month=m, seconds=seconds_pack(v)) for (c, m), v in values.items()],
            batch_size=1000))


# --- from scratch ------------------------------------------------------------------------------

def _model_of(apps, name: str):
    """A model by name in probes or detection: migration 0005's historical models are all in
    probes; today, the components' are in detection (probes migration 0007)."""
    try:
        return apps.get_model("probes", name)
    except LookupError:
        return apps.get_model("detection", name)


def rollups_rebuild(apps=None) -> dict:
    """Recompute RunDay, ComponentHour, ComponentDay and Component.status_since from what they
    summarise: run counts from the RunHour rows (an hour counts in the local day it starts in, so
    in a zone whose offset is not whole hours a day's edges are off by part of an hour), status
    seconds from every component's status changes. Migration 0005 runs it with its historical
    models (`apps`), so it may only use fields that exist there; detection.simulation.history_fill
    and the tests run it with today's."""
    if apps is None:
        from django.apps import apps
    models = {name: _model_of(apps, name) for name in
              ("RunHour", "RunDay", "ComponentHour", "ComponentDay", "Component", "ComponentStatusChange")}
    zone = page_zone()
    with transaction.atomic():
        for name in ("RunDay", "ComponentHour", "ComponentDay"):
            models[name].objects.all().delete()
        run_days, component_hours, component_days = (defaultdict(Counts) for _ in range(3))
        feeds = defaultdict(list)
        for component_id, probe_id in models["Component"].probes.through.objects.values_list("component_id",
                                                                                            "probe_id"):
            feeds[probe_id].append(component_id)
        for probe_id, location_id, hour, *counts in (models["RunHour"].objects.order_by("hour", "id")
                                                     .values_list("probe_id", "location_id", "hour", *COUNT_FIELDS)
                                                     .iterator()):
            day = day_of(hour, zone)
            run_days[probe_id, location_id, day].add_row(*counts)
            for component_id in feeds[probe_id]:
                component_hours[component_id, hour].add_row(*counts)
                component_days[component_id, day].add_row(*counts)
        hour_seconds, day_seconds, since = _status_history(models, zone)

        def rows(model, key_fields, counts, seconds=None):
            seconds = seconds or {}
            for key in sorted(set(counts) | set(seconds)):
                row = model(**dict(zip(key_fields, key)))
                if key in counts:
                    counts[key].apply(row)
                if key in seconds:
                    for name in SECONDS_FIELDS:
                        setattr(row, name, getattr(seconds[key], name))
                yield row

        made = {}
        for name, key_fields, counts, seconds in (("RunDay", RUN_DAY_KEY, run_days, None),
                                                  ("ComponentHour", COMPONENT_HOUR_KEY, component_hours, hour_seconds),
                                                  ("ComponentDay", COMPONENT_DAY_KEY, component_days, day_seconds)):
            made[name] = len(models[name].objects.bulk_create(rows(models[name], key_fields, counts, seconds),
                                                              batch_size=1000))
        for component_id, at in since.items():
            models["Component"].objects.filter(id=component_id).update(status_since=at)
        try:
            made["ComponentMonth"] = component_months_rebuild(apps)
        except LookupError:
            pass  # probes migration 0005's models: detection's migration 0007 makes the months
    return made


def _status_history(models: dict, zone: ZoneInfo) -> tuple[dict, dict, dict]:
    """Status seconds per (component, hour) and (component, day), and each component's last
    change, from its status changes: the interval before each change was spent in the status it
    changed from, counted from the component's creation, as component_set_status counts it."""
    hour_seconds, day_seconds, since = defaultdict(Seconds), defaultdict(Seconds), {}
    created = dict(models["Component"].objects.values_list("id", "created_at"))
    for component_id, at, old in (models["ComponentStatusChange"].objects.order_by("component_id", "changed_at", "id")
                                  .values_list("component_id", "changed_at", "old_status").iterator()):
        if component_id not in created:
            continue
        previous = since.get(component_id)
        at = max(at, previous) if previous else at
        start = max(previous or created[component_id], created[component_id])
        if at > start:
            hours, days = status_pieces(start, at, zone)
            for hour, seconds in hours.items():
                hour_seconds[component_id, hour].add(old, seconds)
            for day, seconds in days.items():
                day_seconds[component_id, day].add(old, seconds)
        since[component_id] = at
    # Every component: one without changes goes back to "since created".
    since = {component_id: since.get(component_id) for component_id in created}
    return hour_seconds, day_seconds, since


def percentile(histogram: Counter, q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) of a bucket histogram, as its bucket's upper bound in ms."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_upper_ms(bucket)
    return bucket_upper_ms(max(histogram))


def latency_series(probe_ids: list[int], *, since: datetime, until: datetime, step_hours: int = 1) -> list[dict]:
    """p50/p95/p99 of successful runs per step from `since` to `until`, merged over the probes and
    their locations; a step with no successful run has None. One query, bounded by the window."""
    start = hour_of(since)
    steps = max(1, math.ceil((until - start).total_seconds() / (3600 * step_hours)))
    merged = [Counter() for _ in range(steps)]
    runs = [0] * steps
    failures = [0] * steps
    for hour, latency, n, failed in (RunHour.objects.filter(probe_id__in=probe_ids, hour__gte=start, hour__lt=until)
                                     .values_list("hour", "latency", "runs", "failures")):
        index = int((hour - start).total_seconds() // (3600 * step_hours))
        if 0 <= index < steps:
            merged[index].update({int(k): v for k, v in latency.items()})
            runs[index] += n
            failures[index] += failed
    return [{"start": start + timedelta(hours=i * step_hours), "p50": percentile(h, 0.5), "p95": percentile(h, 0.95),
             "p99": percentile(h, 0.99), "runs": runs[i], "failures": failures[i]} for i, h in enumerate(merged)]
