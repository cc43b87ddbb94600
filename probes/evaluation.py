"""From runs to component status: every change of status is a row.

This first rule looks at the latest run of each probe at each location: all failing is a major
outage, some failing a partial outage. Hysteresis, quorum, latency and incidents build on it.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from probes.models import Component, ComponentStatus, ComponentStatusChange, Outcome, ProbeLocation, Run


def component_status_from_latest(outcomes: list[str]) -> ComponentStatus:
    known = [o for o in outcomes if o]
    failing = sum(1 for o in known if o == Outcome.FAILURE)
    if not known or failing == 0:
        return ComponentStatus.OPERATIONAL
    if failing == len(known):
        return ComponentStatus.MAJOR
    return ComponentStatus.PARTIAL


def components_evaluate(*, probe_id: int, run: Run | None = None) -> list[ComponentStatusChange]:
    """Re-derive the status of every component the probe feeds. Runs inside the caller's
    transaction; the component rows are locked so concurrent evaluations apply one at a time."""
    changes = []
    with transaction.atomic():
        components = list(Component.objects.select_for_update().filter(probes__id=probe_id).order_by("id"))
        for component in components:
            outcomes = list(
                ProbeLocation.objects.filter(probe__components=component, probe__enabled=True)
                .values_list("last_outcome", flat=True)
            )
            new = component_status_from_latest(outcomes)
            change = component_set_status(component=component, status=new, run=run,
                                          reason=f"{outcomes.count(Outcome.FAILURE)} of {len(outcomes)} "
                                                 f"probe locations failing")
            if change:
                changes.append(change)
    return changes


def component_set_status(*, component: Component, status: str, reason: str,
                         run: Run | None = None) -> ComponentStatusChange | None:
    if component.status == status:
        return None
    changed_at = run.started_at if run else timezone.now()
    change = ComponentStatusChange.objects.create(
        component=component, old_status=component.status, new_status=status, reason=reason[:300],
        run=run, changed_at=changed_at,
    )
    Component.objects.filter(id=component.id).update(status=status, updated_at=timezone.now())
    component.status = status
    return change
