"""Whatever a platform declares, reading the same declaration again writes nothing."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from official.models import OfficialSource, OfficialStateChange
from official.parse import COMPONENT_STATUSES, INCIDENT_STATUSES, INDICATORS, Declared, DeclaredComponent, DeclaredIncident
from official.state import official_declared_record
from probes.models import Platform

T0 = datetime(2023, 2, 8, 17, 0, tzinfo=timezone.utc)
SLUGS = itertools.count()
times = st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                                 timezones=st.just(timezone.utc))
names = st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs")), min_size=1, max_size=20).map(str.strip) \
    .filter(bool)
# What official.parse hands over: plain text, control characters (NUL included) already dropped
# (tests/official/test_parse.py); PostgreSQL's text would refuse a NUL.
plain_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=30)
incidents = st.builds(DeclaredIncident, external_id=st.sampled_from(["a", "b", "c"]), name=names,
                      status=st.sampled_from(INCIDENT_STATUSES), components=st.lists(names, max_size=2),
                      started_at=times, resolved_at=times, updated_at=times, last_update_text=plain_text)
declarations = st.builds(
    Declared, indicator=st.sampled_from(INDICATORS), description=plain_text,
    components=st.lists(st.builds(DeclaredComponent, name=st.sampled_from(["API", "Posting"]),
                                  status=st.sampled_from(COMPONENT_STATUSES), updated_at=times),
                        max_size=2, unique_by=lambda c: c.name),
    incidents=st.lists(incidents, max_size=3, unique_by=lambda i: i.external_id), complete=st.booleans())


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=declarations, second=declarations)
def test_reading_the_same_declaration_twice_writes_nothing_the_second_time(first, second):
    platform = Platform.objects.create(name="P", slug=f"p{next(SLUGS)}", kind="mastodon", base_url="https://p.example")
    source = OfficialSource.objects.create(platform=platform, kind="statuspage", url="https://status.p.example")
    official_declared_record(source_id=source.id, declared=first, now=T0)
    official_declared_record(source_id=source.id, declared=second, now=T0 + timedelta(minutes=1))
    assert official_declared_record(source_id=source.id, declared=second, now=T0 + timedelta(minutes=2)) == 0
    for change in OfficialStateChange.objects.filter(source=source):
        assert change.declared_at is None or change.declared_at <= change.seen_at
