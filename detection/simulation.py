"""Feeding synthetic runs through the real recording and evaluation path, on a chosen clock.

Used by the tests (property-based and scenario tests) and by `bench/` to replay long run
sequences in seconds: everything but the platform call is the production code.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import time_machine

from platforms.errors import ProbeError
from probes.models import ProbeLocation, Run
from probes.runner import run_record


def record_run(placement: ProbeLocation, started_at: datetime, *, failure_class: str = "", latency_ms: int = 40,
               status_code: int | None = None, platform_error: str = "") -> Run:
    """Record one run that started at `started_at` and took `latency_ms`, as if a worker had."""
    finished_at = started_at + timedelta(milliseconds=latency_ms)
    failure = ProbeError(failure_class, f"simulated {failure_class}") if failure_class else None
    evidence = {}
    if failure_class:
        evidence = {"failure_class": failure_class, "status_code": status_code, "platform_error": platform_error}
    with time_machine.travel(finished_at, tick=False):
        return run_record(key=str(uuid.uuid4()), placement=placement, scheduled_for=started_at, started_at=started_at,
                          latency_ms=latency_ms, failure=failure, steps=[], evidence=evidence, cleanup="none",
                          secrets=[])


def simulate_scenario(scenario, *, start: datetime, interval_s: float = 30.0, seed: int = 1,
                      recovery_intervals: int = 6) -> dict:
    """Play a scenario against the configured probes through the real evaluation, with the
    sandbox's answers simulated (detection.scenarios.simulate_outcome). Each location runs on the
    probe's grid with its own small offset, as dispatch lateness would give. Returns the times
    the faults were set and cleared (for comparing measured with injected durations)."""
    from detection.scenarios import failing_slots, noise_slots, resolve_fault, simulate_outcome

    placements = list(ProbeLocation.objects.filter(probe__enabled=True).select_related("probe", "location")
                      .order_by("location__name", "probe__slug"))
    locations = sorted({p.location.name for p in placements})
    fault_from = start + timedelta(seconds=scenario.warmup_s)
    fault_until = fault_from + timedelta(seconds=scenario.fault_s)
    end = fault_until + timedelta(seconds=interval_s * recovery_intervals)
    slots = failing_slots(scenario, int(scenario.fault_s // interval_s) + 1, seed)
    noisy = noise_slots(scenario, int(scenario.warmup_s // interval_s), seed)
    offsets = {name: 0.2 + 0.9 * i for i, name in enumerate(locations)}
    events = []
    for placement in placements:
        t = start + timedelta(seconds=offsets[placement.location.name])
        while t < end:
            events.append((t, placement))
            t += timedelta(seconds=interval_s)
    events.sort(key=lambda e: (e[0], e[1].id))
    for at, placement in events:
        active = []
        if at < fault_from and int((at - start).total_seconds() // interval_s) in noisy:
            active = [resolve_fault(f, locations=locations, latency_threshold_ms=placement.probe.latency_threshold_ms)
                      for f in scenario.noise]
        if fault_from <= at < fault_until:
            slot = int((at - fault_from).total_seconds() // interval_s)
            if slot in slots:
                active = [resolve_fault(f, locations=locations, latency_threshold_ms=placement.probe.latency_threshold_ms)
                          for f in scenario.faults]
        failure_class, latency = simulate_outcome(active, action=placement.probe.action,
                                                  location=placement.location.name,
                                                  timeout_ms=int(placement.probe.timeout_s * 1000))
        record_run(placement, at, failure_class=failure_class, latency_ms=latency,
                   status_code={"quota_exceeded": 429, "read_only": 503, "server_error": 500}.get(failure_class))
    return {"fault_from": fault_from, "fault_until": fault_until, "end": end}


DEMO_COMPONENTS = {"post": "Posting", "repost": "Reposting", "follow": "Following", "dm": "Direct messages",
                   "read": "Timeline", "limits": "Post length limit"}


def demo_layout(*, locations: list[str], interval_s: int = 30, created_at: datetime | None = None,
                delivery: bool = False):
    """The demo's shape in the database: one platform, a probe and a component per action (and,
    with `delivery`, the delivery probe's "Post delivery")."""
    from django.utils import timezone

    from detection.models import Component
    from probes.models import Location, Platform, Probe

    created_at = created_at or timezone.now() - timedelta(days=1)
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url="http://127.0.0.1:9")
    places = [Location.objects.create(name=name) for name in locations]
    shown = {**DEMO_COMPONENTS, **({"delivery": "Post delivery"} if delivery else {})}
    for position, (action, name) in enumerate(shown.items()):
        probe = Probe.objects.create(name=name, slug=f"sandbox-{action}", platform=platform, action=action,
                                     interval_s=interval_s, timeout_s=10, latency_threshold_ms=2000)
        for location in places:
            ProbeLocation.objects.create(probe=probe, location=location, created_at=created_at)
        Component.objects.create(name=name, position=position).probes.add(probe)
    return platform


def wipe() -> None:
    """Remove everything the simulation made (for benchmarks that loop; tests roll back instead)."""
    from detection.models import Component, Incident
    from probes.models import Location, Platform, Probe

    Incident.objects.all().delete()
    Run.objects.all().delete()
    Component.objects.all().delete()
    Probe.objects.all().delete()
    Platform.objects.all().delete()
    Location.objects.all().delete()


def history_fill(*, days: int, now: datetime, seed: int = 1, outages_per_week: float = 1.0) -> dict:
    """Write `days` of past history straight into the tables (status rows, incidents with their
    updates, hourly rollups, then the other rollups from them) for every component, as evaluation
    would have left it. For tests and benchmarks that need a long history fast; the rows are the
    same shape, the path is not."""
    import random

    from detection.models import (
        Component, ComponentStatus, ComponentStatusChange, Incident, IncidentComponent, IncidentStatus,
        IncidentUpdate,
    )
    from probes.models import RunHour
    from detection.rollups import bucket_of, hour_of, rollups_rebuild

    rng = random.Random(seed)
    start = now - timedelta(days=days)
    components = list(Component.objects.prefetch_related("probes__placements"))
    Component.objects.filter(id__in=[c.id for c in components], created_at__gt=start).update(created_at=start)
    changes, hours, made = [], [], 0
    for component in components:
        t = start + timedelta(hours=rng.uniform(1, 48))
        while t < now - timedelta(hours=2):
            status = rng.choice([ComponentStatus.MAJOR, ComponentStatus.PARTIAL, ComponentStatus.DEGRADED])
            length = timedelta(minutes=rng.uniform(2, 180))
            end = min(t + length, now - timedelta(hours=1))
            changes += [ComponentStatusChange(component=component, old_status=ComponentStatus.OPERATIONAL,
                                              new_status=status, reason="history_fill", changed_at=t),
                        ComponentStatusChange(component=component, old_status=status,
                                              new_status=ComponentStatus.OPERATIONAL, reason="history_fill",
                                              changed_at=end)]
            if status != ComponentStatus.DEGRADED:
                impact = "critical" if status == ComponentStatus.MAJOR else "major"
                incident = Incident.objects.create(
                    title=f"{component.name} failing", status=IncidentStatus.RESOLVED, impact=impact, automatic=True,
                    started_at=t, detected_at=t + timedelta(seconds=60), resolved_at=end, created_at=t,
                    updated_at=end, evidence={"failure_classes": {"server_error": 4}, "locations": ["atlanta"]})
                IncidentComponent.objects.create(incident=incident, component=component, worst_status=status,
                                                 last_status=ComponentStatus.OPERATIONAL, joined_at=t)
                IncidentUpdate.objects.bulk_create([
                    IncidentUpdate(incident=incident, status=IncidentStatus.INVESTIGATING, automatic=True,
                                   body=f"{component.name} is failing.", created_at=t + timedelta(seconds=60)),
                    IncidentUpdate(incident=incident, status=IncidentStatus.RESOLVED, automatic=True,
                                   body="Resolved.", created_at=end)])
                made += 1
            t = end + timedelta(days=rng.expovariate(outages_per_week / 7))
        for probe in component.probes.all():
            for placement in probe.placements.all():
                hour = hour_of(max(start, now - timedelta(days=8)))
                while hour < now:
                    latency = int(rng.lognormvariate(5, 0.4))
                    hours.append(RunHour(probe_id=probe.id, location_id=placement.location_id, hour=hour, runs=60,
                                         failures=0, latency={str(bucket_of(latency)): 40,
                                                              str(bucket_of(latency * 3)): 20}))
                    hour += timedelta(hours=1)
    ComponentStatusChange.objects.bulk_create(changes, batch_size=1000)
    RunHour.objects.bulk_create(hours, batch_size=1000, ignore_conflicts=True)
    rollups_rebuild()  # what evaluation keeps up to date change by change, made from the rows at once
    return {"status_changes": len(changes), "incidents": made, "run_hours": len(hours)}
