"""The uptime bar's words, written in plain Python (statuspage/templatetags/status.py): each day says
what detection.uptime's Day says (its level, its uptime, its downtime by kind), hostile names and
titles stay text, and the status page's incident lists show each incident's latest update."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone as dt_timezone
from types import SimpleNamespace

import lxml.html
import pytest
from django.template import Context
from django.utils import translation

from detection.evaluation import component_set_status
from detection.incidents import format_duration_seconds, incident_add_update, incident_open_manual
from detection.models import Component, ComponentStatus, IncidentStatus
from detection.uptime import Day, UptimeBar
from statuspage.templatetags.status import percent, uptime_bar
from tests.statuspage.test_pages import get, site  # noqa: F401 (the fixture)

HOSTILE_NAME = '<script>alert("name")</script> & \'q\''
HOSTILE_TITLE = '"><img src=x onerror=alert(1)> & <b>title</b>'
FIRST = date(2026, 8, 23)


def cells(html: str) -> list:
    return lxml.html.fromstring(html).xpath("./li")


def expected_words(day: Day, *, monitored: bool = True) -> str:
    """What a day says, from Day's own properties (the words the template once wrote)."""
    if not monitored:
        words = "not monitored yet"
    elif day.level == "nodata":
        words = "no data"
    elif not day.down_s and not day.degraded_s:
        words = "no downtime"
    else:
        words = percent(day.uptime)
        for name, kind in (("major_s", "major outage"), ("partial_s", "partial outage"), ("degraded_s", "degraded")):
            if getattr(day, name):
                words += f" · {format_duration_seconds(getattr(day, name))} {kind}"
    if day.maintenance_s:
        words += f" · {format_duration_seconds(day.maintenance_s)} maintenance"
    for _public_id, title in day.incidents:
        words += f" · {title}"
    return words


DAYS = [
    Day(FIRST),  # before the component existed
    Day(FIRST + timedelta(days=1)),  # a gap: no data
    Day(FIRST + timedelta(days=2), observed_s=86400),
    Day(FIRST + timedelta(days=3), observed_s=86400, degraded_s=600),
    Day(FIRST + timedelta(days=4), observed_s=86400, major_s=90),
    Day(FIRST + timedelta(days=5), observed_s=86400, partial_s=7200, maintenance_s=3600),
    Day(FIRST + timedelta(days=6), observed_s=86400, major_s=20000, partial_s=1, degraded_s=5,
        incidents=[("abc123", HOSTILE_TITLE), ("def456", "Second")]),
    Day(FIRST + timedelta(days=7), observed_s=86400, maintenance_s=86400),  # all maintenance
    Day(FIRST + timedelta(days=8), observed_s=86400, incidents=[("abc123", HOSTILE_TITLE)]),  # no downtime
    Day(FIRST + timedelta(days=9), observed_s=3600, major_s=1800, partial_s=0.4),
]


def test_each_day_says_what_its_figures_say():
    component = SimpleNamespace(name=HOSTILE_NAME, bar=UptimeBar.of_days(DAYS, span_s=10 * 86400),
                                created_at=datetime(2026, 8, 24, 10, 0, tzinfo=dt_timezone.utc))
    with translation.override("en"):
        html = str(uptime_bar(Context({"lang_prefix": ""}), component))
        expected = [expected_words(day, monitored=i > 0) for i, day in enumerate(DAYS)]
        classes = ["nodata before"] + [None if d.level == "up" else d.level for d in DAYS[1:]]
    ol = lxml.html.fromstring(html)
    assert ol.get("aria-label") == f"{HOSTILE_NAME}: {percent(component.bar.uptime)} uptime over 90 days, one day per item"
    items = ol.xpath("./li")
    assert len(items) == len(DAYS)
    for day, item, words, cls in zip(DAYS, items, expected, classes):
        label = f"{day.date.day} {day.date.strftime('%b')}"
        assert item.text_content() == f"{label}: {words}"
        assert item.get("class") == cls
        assert (item.get("tabindex") == "0") == bool(day.down_s or day.incidents)
    links = ol.xpath(".//a")
    assert [(a.get("href"), a.text_content()) for a in links] == [
        ("/incidents/abc123", HOSTILE_TITLE), ("/incidents/def456", "Second"), ("/incidents/abc123", HOSTILE_TITLE)]
    assert "<script>" not in html and "<img" not in html and "<b>" not in html


def test_the_words_follow_the_language():
    component = SimpleNamespace(name="Posting", bar=UptimeBar.of_days(DAYS[2:7], span_s=5 * 86400), created_at=None)
    with translation.override("fr"):
        html = str(uptime_bar(Context({"lang_prefix": "/fr"}), component))
        fr = percent(DAYS[4].uptime)
    with translation.override("en"):
        en = percent(DAYS[4].uptime)
    assert "," in fr and fr in html and en not in html  # 99,90 %, not the English figure cached
    assert 'href="/fr/incidents/abc123"' in html


def test_a_hostile_component_name_and_incident_title_stay_text_on_the_page(client, site):  # noqa: F811
    following = Component.objects.get(name="Following")
    Component.objects.filter(id=following.id).update(name=HOSTILE_NAME)
    following.refresh_from_db()
    component_set_status(component=following, status=ComponentStatus.MAJOR, reason="t", at=site - timedelta(minutes=50))
    incident_open_manual(title=HOSTILE_TITLE, body="Looking.", status=IncidentStatus.INVESTIGATING,
                         components=[following], started_at=site - timedelta(minutes=50))
    html = get(client, "/")
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>title" not in html
    page = lxml.html.fromstring(html)
    (bar,) = [ol for ol in page.xpath("//ol[@class='bar']") if ol.get("aria-label").startswith(HOSTILE_NAME)]
    today = bar.xpath("./li")[-1]
    assert [a.text_content() for a in today.xpath(".//a")] == [HOSTILE_TITLE]
    assert "major outage" in today.text_content()


def test_an_incident_in_the_lists_shows_its_latest_update(client, site):  # noqa: F811
    posting = Component.objects.get(name="Posting")
    incident = incident_open_manual(title="Posting fails", body="First words.", status=IncidentStatus.INVESTIGATING,
                                    components=[posting], started_at=site - timedelta(hours=2))
    incident_add_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Latest words.",
                        automatic=False, at=site + timedelta(minutes=5))
    incident_add_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Older words.",
                        automatic=False, at=site + timedelta(minutes=2))
    html = get(client, "/")  # the first update was written at the start (now), these after it
    assert "Latest words." in html and "Older words." not in html and "First words." not in html
    # Two updates at the same instant: the later written (Statuspage's order, and the timeline's).
    same = site + timedelta(minutes=10)
    incident_add_update(incident=incident, status=IncidentStatus.MONITORING, body="Tie one.", automatic=False, at=same)
    incident_add_update(incident=incident, status=IncidentStatus.MONITORING, body="Tie two.", automatic=False, at=same)
    html = get(client, "/")
    assert "Tie two." in html and "Tie one." not in html and "Latest words." not in html


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_bar_is_the_same_with_and_without_its_caches(language):
    """The formatted percentages, durations and links are cached: a second bar gets the same words."""
    component = SimpleNamespace(name="Posting", bar=UptimeBar.of_days(DAYS, span_s=10 * 86400), created_at=None)
    with translation.override(language):
        first = str(uptime_bar(Context({"lang_prefix": ""}), component))
        second = str(uptime_bar(Context({"lang_prefix": ""}), component))
    assert first == second and len(cells(first)) == len(DAYS)
