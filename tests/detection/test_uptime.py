"""Uptime per day from the component status rollups: the formula, day boundaries, incidents."""
from __future__ import annotations

import struct
import zlib
from array import array
from datetime import date, datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from hypothesis import given, settings, strategies as st

from detection.evaluation import component_set_status
from detection.models import Component, ComponentMonth, ComponentStatus, Incident, IncidentComponent
from detection.rollups import seconds_pack, seconds_unpack
from detection.uptime import PARTIAL_WEIGHT, uptime_bars

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=dt_timezone.utc)
DAY = 86400


def change(component, at, new):
    component_set_status(component=component, status=new, reason="test", at=at)


def spell(component, start, length, status):
    change(component, start, status)
    change(component, start + length, ComponentStatus.OPERATIONAL)


@pytest.fixture
def posting(db):
    return Component.objects.create(name="Posting", created_at=NOW - timedelta(days=30), status="operational")


def day_of(bar, when):
    return next(d for d in bar.days if d.date == when.date())


def test_major_counts_fully_partial_at_0_3_and_maintenance_not_at_all(posting):
    day = datetime(2026, 11, 18, tzinfo=dt_timezone.utc)
    spell(posting, day + timedelta(hours=1), timedelta(hours=1), ComponentStatus.MAJOR)
    spell(posting, day + timedelta(hours=3), timedelta(hours=1), ComponentStatus.PARTIAL)
    spell(posting, day + timedelta(hours=5), timedelta(hours=2), ComponentStatus.MAINTENANCE)
    spell(posting, day + timedelta(hours=9), timedelta(hours=1), ComponentStatus.DEGRADED)
    cell = day_of(uptime_bars([posting], now=NOW)[posting.id], day)
    assert (cell.major_s, cell.partial_s, cell.maintenance_s, cell.degraded_s) == (3600, 3600, 7200, 3600)
    assert cell.uptime == pytest.approx(1 - (3600 + PARTIAL_WEIGHT * 3600) / (DAY - 7200))
    assert cell.level == "partial"  # 1 h 18 min weighted: above 30 min, below 4 h


def test_the_90_day_figure_weighs_days_by_the_time_counted(posting):
    spell(posting, datetime(2026, 11, 10, 6, tzinfo=dt_timezone.utc), timedelta(hours=6), ComponentStatus.MAJOR)
    bar = uptime_bars([posting], now=NOW)[posting.id]
    monitored = (NOW - posting.created_at).total_seconds()
    assert bar.uptime == pytest.approx(1 - 6 * 3600 / monitored)
    assert len(bar.days) == 90 and bar.days[-1].date == NOW.date()


def test_days_before_the_component_existed_have_no_data_and_do_not_count(posting):
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert [d.level for d in bar.days[:59]] == ["nodata"] * 59
    assert bar.days[59].level == "up" and bar.days[59].uptime == 1
    assert bar.uptime == 1


def test_an_outage_spanning_midnight_is_split_between_its_days(posting):
    spell(posting, datetime(2026, 11, 15, 23, tzinfo=dt_timezone.utc), timedelta(hours=3), ComponentStatus.MAJOR)
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert day_of(bar, datetime(2026, 11, 15)).major_s == 3600
    assert day_of(bar, datetime(2026, 11, 16)).major_s == 7200


def test_days_are_calendar_days_of_the_page_time_zone(posting, settings):
    settings.TIME_ZONE = "America/Los_Angeles"
    # 05:00 UTC on the 16th is 21:00 on the 15th in California.
    spell(posting, datetime(2026, 11, 16, 5, tzinfo=dt_timezone.utc), timedelta(hours=1), ComponentStatus.MAJOR)
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert day_of(bar, datetime(2026, 11, 15)).major_s == 3600
    assert day_of(bar, datetime(2026, 11, 16)).major_s == 0


def test_an_outage_still_running_counts_until_now(posting):
    change(posting, NOW - timedelta(hours=2), ComponentStatus.MAJOR)
    cell = uptime_bars([posting], now=NOW)[posting.id].days[-1]
    assert cell.major_s == 7200 and cell.observed_s == 12 * 3600


def test_a_status_set_before_the_window_holds_from_its_start(posting):
    """No change inside the window: the current status held all along."""
    Component.objects.filter(id=posting.id).update(status=ComponentStatus.PARTIAL, created_at=NOW - timedelta(days=200))
    posting.refresh_from_db()
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert bar.uptime == pytest.approx(1 - PARTIAL_WEIGHT)


def test_each_day_lists_the_incidents_that_touched_it(posting):
    incident = Incident.objects.create(title="Posting failing", started_at=datetime(2026, 11, 12, 23, tzinfo=dt_timezone.utc),
                                       detected_at=datetime(2026, 11, 12, 23, 1, tzinfo=dt_timezone.utc),
                                       resolved_at=datetime(2026, 11, 13, 1, tzinfo=dt_timezone.utc))
    IncidentComponent.objects.create(incident=incident, component=posting, worst_status="major_outage",
                                     last_status="operational")
    bar = uptime_bars([posting], now=NOW)[posting.id]
    touched = [d.date.day for d in bar.days if d.incidents]
    assert touched == [12, 13]
    assert day_of(bar, datetime(2026, 11, 12)).incidents == ((incident.public_id, "Posting failing"),)


def test_the_incidents_a_day_lists_have_their_title_in_the_page_language(posting):
    started = datetime(2026, 11, 12, 10, tzinfo=dt_timezone.utc)
    automatic = Incident.objects.create(title="Character limit not enforced", title_text={"key": "limit_not_enforced"},
                                        automatic=True, started_at=started, detected_at=started,
                                        resolved_at=started + timedelta(hours=1))
    by_a_person = Incident.objects.create(title="Slow uploads", title_text={"key": "limit_not_enforced"},
                                          title_locked=True, started_at=started, detected_at=started,
                                          resolved_at=started + timedelta(hours=1))
    for incident in (automatic, by_a_person):
        IncidentComponent.objects.create(incident=incident, component=posting, worst_status="major_outage",
                                         last_status="operational")
    with translation.override("fr"):
        listed = day_of(uptime_bars([posting], now=NOW)[posting.id], started).incidents
    assert sorted(listed) == sorted([(automatic.public_id, "Limite de caractères non appliquée"),
                                     (by_a_person.public_id, "Slow uploads")])
    with translation.override("en"):
        listed = day_of(uptime_bars([posting], now=NOW)[posting.id], started).incidents
    assert sorted(title for _, title in listed) == ["Character limit not enforced", "Slow uploads"]


def test_two_queries_whatever_the_number_of_components_and_changes(db):
    components = [Component.objects.create(name=f"C{i}", created_at=NOW - timedelta(days=100), status="operational") for i in range(5)]
    for i, component in enumerate(components):
        for day in reversed(range(0, 80, 3)):  # in time order, as status changes come
            spell(component, NOW - timedelta(days=day, hours=i), timedelta(minutes=20), ComponentStatus.MAJOR)
    with CaptureQueriesContext(connection) as queries:
        bars = uptime_bars(components, now=NOW)
    assert len(queries) == 2
    assert all(bar.uptime < 1 for bar in bars.values())


def test_a_day_when_clocks_go_back_has_25_hours(posting, settings):
    settings.TIME_ZONE = "Europe/Paris"  # 25 Oct 2026: 03:00 CEST becomes 02:00 CET
    Component.objects.filter(id=posting.id).update(created_at=datetime(2026, 10, 1, tzinfo=dt_timezone.utc))
    posting.refresh_from_db()
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert day_of(bar, datetime(2026, 10, 25)).observed_s == 25 * 3600
    assert day_of(bar, datetime(2026, 10, 24)).observed_s == DAY


def test_an_incident_resolved_at_midnight_belongs_to_its_day_only(posting):
    incident = Incident.objects.create(title="Late outage", started_at=datetime(2026, 11, 15, 22, tzinfo=dt_timezone.utc),
                                       detected_at=datetime(2026, 11, 15, 22, 1, tzinfo=dt_timezone.utc),
                                       resolved_at=datetime(2026, 11, 16, tzinfo=dt_timezone.utc))
    IncidentComponent.objects.create(incident=incident, component=posting, worst_status="major_outage",
                                     last_status="operational")
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert [d.date.day for d in bar.days if d.incidents] == [15]


def test_the_bar_reads_each_month_of_its_window_and_a_short_month_value_as_days_without_seconds(posting):
    spell(posting, datetime(2026, 10, 30, 1, tzinfo=dt_timezone.utc), timedelta(hours=2), ComponentStatus.MAJOR)
    spell(posting, datetime(2026, 11, 2, 1, tzinfo=dt_timezone.utc), timedelta(hours=1), ComponentStatus.MAJOR)
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert day_of(bar, datetime(2026, 10, 30)).major_s == 7200 and day_of(bar, datetime(2026, 11, 2)).major_s == 3600
    # A month row cut short (no writer leaves one): its missing days have no seconds, the page stays up.
    row = ComponentMonth.objects.get(component=posting, month=date(2026, 11, 1))
    assert day_of(bar, datetime(2026, 11, 1)).observed_s == DAY
    row.seconds = seconds_pack(seconds_unpack(row.seconds)[:0])
    row.save()
    bar = uptime_bars([posting], now=NOW)[posting.id]
    assert day_of(bar, datetime(2026, 11, 1)).observed_s == 0 and day_of(bar, datetime(2026, 11, 2)).major_s == 0
    assert day_of(bar, datetime(2026, 10, 30)).major_s == 7200


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=4096),
                 st.binary(max_size=2048).map(lambda raw: zlib.compress(raw)),  # well-formed, any length
                 st.just(zlib.compress(bytes(10_000_000)))))  # expands to 10 MB
def test_any_month_value_reads_as_at_most_a_month_of_floats(blob):
    """A damaged or hostile ComponentMonth.seconds (no writer leaves one) is read without error and
    never expands past a month's floats: what the page can be made to allocate is bounded."""
    values = seconds_unpack(blob)
    assert len(values) <= 31 * 5


@given(st.lists(st.floats(allow_nan=False), max_size=31 * 5))
def test_a_month_value_reads_back_as_the_same_floats(floats):
    assert list(seconds_unpack(seconds_pack(array("d", floats)))) == floats


def test_a_month_value_in_the_plain_format_of_0007_reads_as_its_floats():
    """A row written as migration 0007 wrote them (by a process not yet on the compressed format, or
    before 0008 ran) reads as what it is, not as a month without data."""
    floats = [86400.0, 0.0, 1.5, 0.0, 3600.25] * 30
    assert list(seconds_unpack(struct.pack(f"<{len(floats)}d", *floats))) == floats
