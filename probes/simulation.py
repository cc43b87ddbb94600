"""Feeding synthetic runs through the real recording and evaluation path, on a chosen clock.

Used by the tests (property-based and scenario tests) and by `bench/` to replay long run
sequences in seconds: everything but the platform call is the production code.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import time_machine

from probes.errors import ProbeError
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
    sandbox's answers simulated (probes.scenarios.simulate_outcome). Each location runs on the
    probe's grid with its own small offset, as dispatch lateness would give. Returns the times
    the faults were set and cleared (for comparing measured with injected durations)."""
    from probes.scenarios import failing_slots, resolve_fault, simulate_outcome

    placements = list(ProbeLocation.objects.filter(probe__enabled=True).select_related("probe", "location")
                      .order_by("location__name", "probe__slug"))
    locations = sorted({p.location.name for p in placements})
    fault_from = start + timedelta(seconds=scenario.warmup_s)
    fault_until = fault_from + timedelta(seconds=scenario.fault_s)
    end = fault_until + timedelta(seconds=interval_s * recovery_intervals)
    slots = failing_slots(scenario, int(scenario.fault_s // interval_s) + 1, seed)
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


def demo_layout(*, locations: list[str], interval_s: int = 30, created_at: datetime | None = None):
    """The demo's shape in the database: one platform, a probe and a component per action."""
    from django.utils import timezone

    from probes.models import Component, Location, Platform, Probe

    created_at = created_at or timezone.now() - timedelta(days=1)
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url="http://127.0.0.1:9")
    places = [Location.objects.create(name=name) for name in locations]
    for position, (action, name) in enumerate(DEMO_COMPONENTS.items()):
        probe = Probe.objects.create(name=name, slug=f"sandbox-{action}", platform=platform, action=action,
                                     interval_s=interval_s, timeout_s=10, latency_threshold_ms=2000)
        for location in places:
            ProbeLocation.objects.create(probe=probe, location=location, created_at=created_at)
        Component.objects.create(name=name, position=position).probes.add(probe)
    return platform


def wipe() -> None:
    """Remove everything the simulation made (for benchmarks that loop; tests roll back instead)."""
    from probes.models import Component, Incident, Location, Platform, Probe

    Incident.objects.all().delete()
    Run.objects.all().delete()
    Component.objects.all().delete()
    Probe.objects.all().delete()
    Platform.objects.all().delete()
    Location.objects.all().delete()
