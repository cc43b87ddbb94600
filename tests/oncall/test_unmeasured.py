"""Only measured states are shown (issue 16, point 7): the on-call dashboard says "Not measured
yet" / "Not monitored" for components with no data, and the page says how much of the period was
measured, the rest being excluded from uptime."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from detection.models import Component
from detection.simulation import demo_layout, record_run
from detection.uptime import uptime_bars
from probes.models import Probe, ProbeLocation


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("oncall", password="x" * 20, is_staff=True))
    return client


@pytest.mark.django_db
def test_the_dashboard_says_not_measured_yet_and_not_monitored(staff_client):
    demo_layout(locations=["atlanta"], created_at=timezone.now() - timedelta(hours=1))
    Probe.objects.filter(action="dm").update(enabled=False)
    record_run(ProbeLocation.objects.get(probe__action="post"), timezone.now() - timedelta(minutes=1))
    stats = {row["component"].name: row for row in staff_client.get("/oncall/").context["stats"]}
    assert stats["Posting"]["status"] == "operational"
    assert stats["Reposting"]["status"] == "not_measured"
    assert stats["Direct messages"]["status"] == "not_monitored"
    page = staff_client.get("/oncall/").content.decode()
    assert "Not measured yet" in page and "Not monitored" in page


@pytest.mark.django_db
def test_the_page_says_how_much_of_the_period_was_measured(client):
    now = timezone.now()
    demo_layout(locations=["atlanta"], created_at=now - timedelta(hours=4))
    Component.objects.update(created_at=now - timedelta(hours=4))
    # Measured from two hours ago only: the first two hours are no data, excluded from uptime.
    placement = ProbeLocation.objects.get(probe__action="post")
    record_run(placement, now - timedelta(hours=2))
    record_run(placement, now - timedelta(seconds=30))  # and fresh
    posting = Component.objects.get(name="Posting")
    bar = uptime_bars([posting], now=now)[posting.id]
    assert bar.measured == pytest.approx(0.5, abs=0.02)
    assert bar.uptime == 1.0  # the unmeasured half counts neither way
    page = client.get("/").content.decode()
    assert "measured 5" in page and "of the period" in page, page[page.find("class=\"bar-legend"):][:300]
