"""The status page's byte budget (issue 19): `/` with 50 components and 90 days of history fits in
40 KB as the cache sends it to a browser (brotli, or gzip) — deterministic, so a test, where its
speed is the bench's. Its accessible words stay: every day of every bar has its label."""
from __future__ import annotations

import gzip
import random
from datetime import datetime, time, timedelta

import brotli
import pytest
from django.utils import timezone

from detection.models import Component, ComponentDay, Incident, IncidentComponent, IncidentStatus
from detection.rollups import component_months_rebuild
from detection.simulation import demo_layout
from probes.models import Probe

pytestmark = pytest.mark.django_db
COMPONENTS, DAYS, BUDGET = 50, 90, 40_000
SECONDS = {"major_outage": "major_s", "partial_outage": "partial_s", "degraded_performance": "degraded_s"}


@pytest.fixture
def fifty_components_ninety_days(public_cache, settings):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 30
    history_write(DAYS)


def history_write(length: int) -> None:
    """50 components with `length` days of daily rollups, about one outage a week each with its
    incident (linked from its day), written straight into the tables the bars read: what
    detection.simulation.history_fill leaves, in a second rather than a minute."""
    rng = random.Random(19)
    now = timezone.now()
    if not Probe.objects.exists():
        demo_layout(locations=["atlanta", "sacramento"], created_at=now - timedelta(days=400))
    probe = Probe.objects.first()
    for i in range(COMPONENTS - Component.objects.count()):
        Component.objects.create(name=f"Extra {i}", position=10 + i, created_at=now - timedelta(days=400)
                                 ).probes.add(probe)
    today = timezone.localtime(now).date()
    days, outages = [], []
    for component in Component.objects.all():
        for back in range(1, length):
            day = today - timedelta(days=back)
            kind = rng.choice(["major_outage", "partial_outage", "degraded_performance"]) if rng.random() < 1 / 7 \
                else None
            seconds = {SECONDS[kind]: rng.randint(60, 9_000)} if kind else {}
            days.append(ComponentDay(component=component, day=day, observed_s=86_400, **seconds))
            if kind:
                started = timezone.make_aware(datetime.combine(day, time(12)))
                outages.append((component, kind, Incident(
                    title=f"{component.name} failing", started_at=started, detected_at=started,
                    resolved_at=started + timedelta(hours=1), status=IncidentStatus.RESOLVED)))
    Incident.objects.bulk_create([incident for _, _, incident in outages])
    IncidentComponent.objects.bulk_create([
        IncidentComponent(incident=incident, component=component, worst_status=kind, last_status="operational")
        for component, kind, incident in outages])
    ComponentDay.objects.bulk_create(days)
    component_months_rebuild()  # the days by month, as the writers keep them (detection.rollups)


def test_the_page_of_fifty_components_fits_its_budget_compressed(client, fifty_components_ninety_days):
    response = client.get("/", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response["Content-Encoding"] == "br"
    page = brotli.decompress(response.content)
    assert len(response.content) <= BUDGET, f"{len(response.content):,} B in brotli"
    gzipped = client.get("/", HTTP_ACCEPT_ENCODING="gzip")
    assert gzip.decompress(gzipped.content) == page
    assert len(gzipped.content) <= BUDGET, f"{len(gzipped.content):,} B in gzip"
    # What the budget may not cost: a bar per component, a labelled item per day.
    text = page.decode()
    assert text.count('<ol class="bar" aria-label=') == COMPONENTS
    assert text.count("<li") >= COMPONENTS * DAYS
    assert text.count("<span>") >= COMPONENTS * DAYS


def test_a_longer_history_costs_no_more_queries(client, public_cache):
    """Issue 19, "history does not cost": the page reads the same rows whatever the history's
    length (its speed is bench/public_pages.py's)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    history_write(2)
    client.get("/")  # what a first request loads (sessions, content types)
    with CaptureQueriesContext(connection) as short:
        client.get("/")
    ComponentDay.objects.all().delete()
    IncidentComponent.objects.all().delete()
    Incident.objects.all().delete()
    history_write(400)
    with CaptureQueriesContext(connection) as long:
        response = client.get("/")
    assert response.status_code == 200 and response.content.count(b"<li") >= COMPONENTS * DAYS
    assert len(long) == len(short), [q["sql"][:120] for q in long]
