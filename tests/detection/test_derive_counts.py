"""components_derive counts the placements that are up per probe in the database, and reads the
others one by one: the statuses, staleness and reasons it derives are exactly those of reading
every placement (the straightforward derivation, kept here as the reference)."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from detection.evaluation import Derived, _stale, components_derive
from detection.models import Component, ComponentStatus, Maintenance
from detection.simulation import demo_layout
from probes.models import PlacementState, Probe, ProbeLocation

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=dt_timezone.utc)
STATES = [PlacementState.UP, PlacementState.DEGRADED, PlacementState.FAILING, PlacementState.UNKNOWN]


def reference(component: Component, now: datetime) -> Derived:
    """Every enabled placement of the component's probes, one by one, as the rules say."""
    placements = list(ProbeLocation.objects.filter(probe__components=component, probe__enabled=True)
                      .select_related("probe", "location"))
    stale = any(p.state == PlacementState.UNKNOWN and _stale(p.last_run_at, p.created_at, p.probe.interval_s, now)
                for p in placements)
    if Maintenance.objects.filter(components=component, scheduled_for__lte=now, scheduled_until__gt=now,
                                  cancelled=False).exists():
        return Derived(ComponentStatus.MAINTENANCE, stale, "maintenance window")
    known = [p for p in placements if p.state != PlacementState.UNKNOWN]
    if not known:
        return Derived(ComponentStatus.UNKNOWN, stale or bool(placements),
                       "no probe data" if placements else "no probe enabled")
    by_probe = defaultdict(list)
    for p in known:
        by_probe[p.probe_id].append(p)
    majors, failing_any, degraded = 0, [], []
    for group in by_probe.values():
        failing = [p for p in group if p.state == PlacementState.FAILING]
        if len(failing) >= min(group[0].probe.quorum or len(group) // 2 + 1, len(group)):
            majors += 1
        failing_any += failing
        degraded += [p for p in group if p.state == PlacementState.DEGRADED]
    where = lambda ps: ", ".join(sorted({f"{p.probe.slug}@{p.location.name}" for p in ps}))  # noqa: E731
    if majors == len(by_probe):
        return Derived(ComponentStatus.MAJOR, stale, f"failing at quorum: {where(failing_any)}")
    if failing_any:
        return Derived(ComponentStatus.PARTIAL, stale, f"failing: {where(failing_any)}")
    if degraded:
        return Derived(ComponentStatus.DEGRADED, stale, f"degraded: {where(degraded)}")
    return Derived(ComponentStatus.OPERATIONAL, stale, "every probe location up")


@pytest.fixture
def layout(db):
    demo_layout(locations=["atlanta", "frankfurt", "sacramento"], created_at=NOW - timedelta(hours=1))
    components = list(Component.objects.order_by("id"))
    probes = list(Probe.objects.order_by("id"))
    for i, component in enumerate(components):  # some components fed by two or three probes
        component.probes.add(*probes[i + 1:i + 1 + i % 3])
    Maintenance.objects.create(title="window", scheduled_for=NOW - timedelta(minutes=5),
                               scheduled_until=NOW + timedelta(minutes=5)).components.add(components[-1])
    return components, probes, list(ProbeLocation.objects.order_by("id"))


a_placement = st.tuples(st.sampled_from(STATES), st.one_of(st.none(), st.integers(min_value=0, max_value=200)))
a_probe = st.tuples(st.booleans(), st.integers(min_value=0, max_value=4))  # enabled, quorum (0: majority)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(placements=st.lists(a_placement, min_size=18, max_size=18), probes=st.lists(a_probe, min_size=6, max_size=6))
def test_derived_from_counts_is_derived_from_every_placement(layout, placements, probes):
    components, probe_rows, placement_rows = layout
    for probe, (enabled, quorum) in zip(probe_rows, probes):
        Probe.objects.filter(id=probe.id).update(enabled=enabled, quorum=quorum)
    for placement, (state, seconds_ago) in zip(placement_rows, placements):
        ProbeLocation.objects.filter(id=placement.id).update(
            state=state, last_run_at=None if seconds_ago is None else NOW - timedelta(seconds=seconds_ago))
    derived = components_derive(components, NOW)
    assert derived == {c.id: reference(c, NOW) for c in components}
