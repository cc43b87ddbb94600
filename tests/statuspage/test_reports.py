"""The reliability report of a platform over a month: uptime over measured time, incidents with
their durations, uncertainty, detection time and time to acknowledge, what was never acknowledged;
as a page and as CSV safe to open in a spreadsheet. And the history page's acknowledgement figures."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone as dt_timezone

import lxml.html
import pytest
import time_machine
from hypothesis import given, strategies as st

from detection.models import Component, ComponentDay, ComponentStatus
from detection.rollups import component_months_rebuild
from probes.models import Probe
from statuspage.reports import FORMULA_STARTS, csv_cell, report_id
from tests.statuspage.official_rows import (
    ack_make, incident_make, official_incident_make, platform_make, source_make,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=dt_timezone.utc)
OCT = datetime(2026, 10, 1, tzinfo=dt_timezone.utc)


@pytest.fixture
def october(db):
    """Chirp in October 2026: three incidents — acknowledged after 23 min, never, and one the
    platform declared before Vigie measured it — and one official incident Vigie did not see."""
    with time_machine.travel(NOW, tick=False):
        platform = platform_make()
        probe = Probe.objects.create(platform=platform, name="post", action="post", interval_s=60)
        # Measured from 11 Oct; on the 12th, a major outage from midnight to 1 am (the rollups hold
        # the closed intervals; operational since).
        posting = Component.objects.create(name="Posting", created_at=OCT + timedelta(days=10),
                                           status=ComponentStatus.OPERATIONAL,
                                           status_since=OCT + timedelta(days=11, hours=1))
        posting.probes.add(probe)
        ComponentDay.objects.create(component=posting, day=date(2026, 10, 11), observed_s=86400)
        ComponentDay.objects.create(component=posting, day=date(2026, 10, 12), observed_s=3600, major_s=3600)
        component_months_rebuild()  # the days by month, as the writers keep them (detection.rollups)
        source = source_make(platform)
        a = incident_make(platform, title="=HYPERLINK(\"http://evil\")", started_at=OCT + timedelta(days=12),
                          resolved_at=OCT + timedelta(days=12, hours=1), detected_after_s=90,
                          started_uncertainty_s=30, resolved_uncertainty_s=45)
        a.components.add(posting, through_defaults={"worst_status": "major_outage", "last_status": "major_outage"})
        official = official_incident_make(source, seen_at=a.started_at + timedelta(minutes=23))
        ack_make(a, source, official=official, at=official.first_seen_at)
        b = incident_make(platform, title="Reposting failing", started_at=OCT + timedelta(days=14),
                          resolved_at=OCT + timedelta(days=14, minutes=20))
        ack_make(b, source)
        c = incident_make(platform, title="Follows failing", started_at=OCT + timedelta(days=20),
                          resolved_at=OCT + timedelta(days=20, minutes=10))
        early = official_incident_make(source, name="Follows delayed", external_id="f",
                                       seen_at=c.started_at - timedelta(minutes=2))
        ack_make(c, source, official=early, at=early.first_seen_at)
        official_incident_make(source, name="-Search slow", external_id="s", seen_at=OCT + timedelta(days=25),
                               resolved_at=OCT + timedelta(days=25, hours=2))
        yield {"platform": platform, "posting": posting, "incidents": (a, b, c), "id": report_id(platform)}


def text(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return " ".join(lxml.html.fromstring(response.content.decode()).text_content().split())


def table_rows(client, path):
    tree = lxml.html.fromstring(client.get(path).content.decode())
    return [" | ".join(" ".join(cell.text_content().split()) for cell in row.xpath("th|td"))
            for row in tree.xpath("//tbody/tr")]


def test_the_report_page_states_uptime_incidents_and_acknowledgements(client, october):
    with time_machine.travel(NOW, tick=False):
        page = text(client, f"/reports/{october['id']}/2026-10")
        rows = table_rows(client, f"/reports/{october['id']}/2026-10")
    assert "Chirp: reliability report, October 2026" in page
    # Posting: measured from 11 Oct (21 days), down 1 h of it.
    assert rows[0] == "Posting | 99.80% | 504 h 0 min | 1 h 0 min | 0 s"
    assert rows[1] == ('=HYPERLINK("http://evil") | 13 Oct 00:00 UTC | 1 h 0 min ± 45 s | 1 min 30 s | '
                       'after 23 min (Elevated error rates)')
    assert rows[2] == "Reposting failing | 15 Oct 00:00 UTC | 20 min ± 0 s | 1 min | never"
    assert rows[3] == "Follows failing | 21 Oct 00:00 UTC | 10 min ± 0 s | 1 min | before the measured start (Follows delayed)"
    assert "3 incidents. Median time to acknowledge: 11 min 30 s. Never acknowledged: 1." in page
    assert "-Search slow" in page and "Declared by Chirp; not seen by Vigie's probes" in page


def test_the_report_defaults_to_the_last_full_month(client, october):
    with time_machine.travel(NOW, tick=False):
        public = october["id"]
        assert "chirp" not in public and len(public) == 12
        assert client.get(f"/reports/{public}")["Location"] == f"/reports/{public}/2026-10"
        assert client.get(f"/reports/{public}?month=2026-09")["Location"] == f"/reports/{public}/2026-09"
        assert client.get(f"/fr/reports/{public}")["Location"] == f"/fr/reports/{public}/2026-10"
        assert client.get(f"/reports/{public}?month=2027-01").status_code == 404
        assert client.get("/reports/nosuchplatfo/2026-10").status_code == 404
        assert client.get(f"/reports/{public}/2026-13").status_code == 404


def test_the_csv_has_a_row_per_component_and_incident_and_no_formula(client, october):
    with time_machine.travel(NOW, tick=False):
        response = client.get(f"/reports/{october['id']}/2026-10.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="vigie-report-{october["id"]}-2026-10.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["kind"] for r in rows] == ["component", "incident", "incident", "incident", "declared_not_seen"]
    posting, a, b, c, unseen = rows
    assert posting["uptime_percent"] == "99.802" and posting["measured_s"] == str(21 * 86400)
    assert a["name"] == "'=HYPERLINK(\"http://evil\")"
    assert (a["duration_s"], a["uncertainty_s"], a["detection_s"], a["time_to_acknowledge_s"]) == (
        "3600", "45", "90", "1380")
    assert a["acknowledgement"] == "acknowledged" and a["official_url"].startswith("https://status.chirp.example")
    assert b["acknowledgement"] == "never" and b["time_to_acknowledge_s"] == ""
    assert c["time_to_acknowledge_s"] == "-120"
    assert unseen["name"] == "'-Search slow"
    assert not any(v.startswith(FORMULA_STARTS) for r in rows for k, v in r.items() if k in ("name", "official_incident"))


@given(st.text())
def test_no_text_cell_starts_a_formula(value):
    cell = csv_cell(value)
    assert not cell.startswith(FORMULA_STARTS) or cell.startswith("'")
    assert cell.lstrip("'") == value.lstrip("'") or cell == "'" + value


def test_the_report_is_in_french_too(client, october):
    with time_machine.travel(NOW, tick=False):
        page = text(client, f"/fr/reports/{october['id']}/2026-10")
    assert "Chirp : rapport de fiabilité, octobre 2026" in page
    assert "Jamais reconnus : 1" in page


def test_the_history_page_gives_median_and_worst_time_to_acknowledge(client, october):
    with time_machine.travel(NOW, tick=False):
        rows = table_rows(client, "/history")
        tree = lxml.html.fromstring(client.get("/history").content)
    # Acknowledged after 23 min and at once (declared first counts 0); one never.
    assert rows == ["Chirp | 11 min 30 s | 23 min | 2 | 1 | 2026-10"]
    assert tree.xpath(f"//a[@href='/reports/{october['id']}/2026-10']")
    assert "Never acknowledged by Chirp" in text(client, "/history/2026-10")
    assert "-Search slow" in text(client, "/history/2026-10")
