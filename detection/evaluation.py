"""From runs to states to component status: every change is a row, times come from the runs.

A probe at a location (a placement) is a small state machine with hysteresis: failing after
`failure_threshold` consecutive failed runs, back after `success_threshold` successes, degraded
when successful runs are slower than the latency threshold, and flapping — reported as degraded —
when its recent outcomes keep changing, until a streak of failures twice the threshold long,
which is failing: flapping never masks an outage. A component's status comes from its
placements across locations and a quorum. Evaluation runs in the recording transaction with the
platform row locked, so evaluations of one platform apply one at a time and never race.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Q, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from detection.events import announce, maintenance_boundary, problem_changed, public_change
from detection.problems import problem_open, problem_resolve  # noqa: F401 (also reached from here)
from probes.models import (
    FailureClass, FLAP_ENTER_CHANGES, FLAP_EXIT_CHANGES, FLAP_WINDOW, Outcome, PlacementState, Platform, Probe, ProbeLocation,
    Run,
)
from detection.models import (
    OUTAGE_STATUSES, STATUS_SEVERITY, Component, ComponentStatus, ComponentStatusChange, Maintenance, OwnProblem,
    PlacementStateChange,
)

# A flapping placement is failing after this many times `failure_threshold` failed runs in a row.
FLAPPING_FAILING_STREAK = 2
# No run for this many intervals and a placement is no longer known to be anything.
STALE_AFTER_INTERVALS = 3
OUTAGE = OUTAGE_STATUSES


# Failure classes that are one failure seen differently: a streak of them is one streak.
CLASS_FAMILIES = {
    FailureClass.READ_ONLY: "refused", FailureClass.QUOTA_EXCEEDED: "refused", FailureClass.RATE_LIMITED: "refused",
    FailureClass.AUTH: "refused_account", FailureClass.REJECTED: "refused_account",
    FailureClass.INVARIANT: "wrong", FailureClass.UNEXPECTED: "wrong", FailureClass.BAD_RESPONSE: "wrong",
    FailureClass.NOT_DELIVERED: "undelivered",
}


def class_family(failure_class: str) -> str:
    """Timeouts, connection failures and server errors are one family ("down"), the default."""
    return CLASS_FAMILIES.get(failure_class, "down")


def _changes(recent: str) -> int:
    return sum(1 for a, b in zip(recent, recent[1:]) if a != b)


# What evaluation writes on a placement: never `next_run_at`, which belongs to the dispatcher.
EVALUATED_FIELDS = [
    "last_run_at", "state", "state_since", "consecutive_failures", "consecutive_successes", "consecutive_slow",
    "consecutive_fast", "recent", "flapping", "evaluated_until", "last_success_at", "last_failure_at",
    "streak_started_at", "streak_previous_success_at", "recovery_started_at", "detected_at", "last_failure_class",
]


def placement_observe(placement: ProbeLocation, run: Run) -> PlacementStateChange | None:
    """Advance a locked placement's state machine by one run and save it."""
    change = _observe(placement, run)
    placement.save(update_fields=EVALUATED_FIELDS)
    return change


def _observe(placement: ProbeLocation, run: Run) -> PlacementStateChange | None:
    """One step of a locked placement's state machine, in memory (the caller saves). Runs older
    than the latest evaluated one (they finished out of order) are kept on record but do not move
    the state."""
    if placement.evaluated_until and run.started_at <= placement.evaluated_until:
        return None
    probe = placement.probe
    placement.evaluated_until = run.started_at
    failed = run.outcome == Outcome.FAILURE
    untested = not failed and isinstance(run.evidence, dict) and run.evidence.get("limit_untested")
    if untested:
        # The run could not test what the probe exists to test (the limit probe while writes are
        # refused): no measurement, neither up nor down. Its component says "no data".
        if placement.state == PlacementState.UNKNOWN:
            return None
        old, placement.state, placement.state_since = placement.state, PlacementState.UNKNOWN, run.started_at
        return PlacementStateChange.objects.create(placement=placement, old_state=old, new_state=PlacementState.UNKNOWN,
                                                   cause=f"could not test: {untested}"[:300], run=run,
                                                   changed_at=run.started_at)
    slow = not failed and run.latency_ms > probe.latency_threshold_ms

    placement.recent = (placement.recent + ("F" if failed else "S"))[-FLAP_WINDOW:]
    changes = _changes(placement.recent)
    if not placement.flapping and changes >= FLAP_ENTER_CHANGES:
        placement.flapping = True
    elif placement.flapping and changes <= FLAP_EXIT_CHANGES:
        placement.flapping = False

    if failed:
        # A placement still failing (a success or two, short of recovering) keeps the start of the
        # streak that made it fail: the outage did not start again, and its incident must not start
        # after it was detected.
        if (placement.last_failure_class and placement.streak_started_at
                and class_family(run.failure_class) != class_family(placement.last_failure_class)):
            # Another kind of failure is another failure: its streak starts here, not at an
            # unrelated earlier one (server errors on a noisy placement before a read-only outage),
            # even on a placement already failing: it stays failing, and the failure at hand is
            # dated by its own first run. The last run that was not this failure bounds its start.
            placement.consecutive_failures = 0
            placement.streak_started_at = run.started_at
            placement.streak_previous_success_at = max(
                (t for t in (placement.last_success_at, placement.last_failure_at) if t), default=None)
        elif placement.consecutive_failures == 0 and placement.state != PlacementState.FAILING:
            placement.streak_started_at = run.started_at
            placement.streak_previous_success_at = placement.last_success_at
        placement.consecutive_failures += 1
        placement.consecutive_successes = placement.consecutive_slow = placement.consecutive_fast = 0
        placement.last_failure_at = run.started_at
        placement.last_failure_class = run.failure_class
        placement.recovery_started_at = None
    else:
        if placement.consecutive_successes == 0:
            placement.recovery_started_at = run.started_at
        placement.consecutive_successes += 1
        placement.consecutive_failures = 0
        if slow:
            placement.consecutive_slow += 1
            placement.consecutive_fast = 0
        else:
            placement.consecutive_fast += 1
            placement.consecutive_slow = 0
        placement.last_success_at = run.started_at

    old = placement.state
    new, cause = _next_state(placement, failed=failed, slow=slow)
    if new == PlacementState.FAILING and old != PlacementState.FAILING:
        placement.detected_at = run.finished_at
    change = None
    if new != old:
        placement.state = new
        placement.state_since = run.started_at
        change = PlacementStateChange.objects.create(placement=placement, old_state=old, new_state=new, cause=cause,
                                                     run=run, changed_at=run.started_at)
    return change


def _next_state(p: ProbeLocation, *, failed: bool, slow: bool) -> tuple[str, str]:
    n, m = p.probe.failure_threshold, p.probe.success_threshold
    state = p.state
    if failed and p.consecutive_failures >= n and not p.flapping:
        return PlacementState.FAILING, f"{p.consecutive_failures} consecutive failed runs ({p.last_failure_class})"
    if failed and p.flapping and p.consecutive_failures >= FLAPPING_FAILING_STREAK * n:
        # Flapping must not mask an outage: a streak this long is failing, whatever came before.
        return PlacementState.FAILING, (f"{p.consecutive_failures} consecutive failed runs "
                                        f"({p.last_failure_class}) after flapping")
    if state == PlacementState.FAILING:
        # Leaving failing always takes `success_threshold` successes, flapping or not.
        if p.consecutive_successes >= m:
            if p.flapping:
                return PlacementState.DEGRADED, f"{m} successful runs, but flapping"
            if p.consecutive_slow >= m:
                return PlacementState.DEGRADED, f"{m} successful runs, slower than {p.probe.latency_threshold_ms} ms"
            return PlacementState.UP, f"{p.consecutive_successes} consecutive successful runs"
        return state, ""
    if p.flapping:
        return PlacementState.DEGRADED, f"flapping: {_changes(p.recent)} changes in the last {len(p.recent)} runs"
    if p.consecutive_slow >= n:
        return PlacementState.DEGRADED, f"{p.consecutive_slow} runs slower than {p.probe.latency_threshold_ms} ms"
    if state == PlacementState.UNKNOWN and not failed:
        return (PlacementState.DEGRADED if slow else PlacementState.UP), "first run after no data"
    if state == PlacementState.DEGRADED and p.consecutive_fast >= m:
        return PlacementState.UP, f"{p.consecutive_fast} consecutive runs within the latency threshold"
    return state, ""


# --- components -------------------------------------------------------------------------------

@dataclass
class Derived:
    status: str
    stale: bool
    reason: str


def is_stale(placement: ProbeLocation, now: datetime) -> bool:
    return _stale(placement.last_run_at, placement.created_at, placement.probe.interval_s, now)


def _stale(last_run_at: datetime | None, created_at: datetime, interval_s: int, now: datetime) -> bool:
    return now - (last_run_at or created_at) > timedelta(seconds=interval_s * STALE_AFTER_INTERVALS)


class _Placement(NamedTuple):
    """What deriving a component's status reads of a placement: a row of values, not three model
    instances (a batch derives components fed by hundreds of placements)."""

    probe_id: int
    state: str
    # Only for a placement in UNKNOWN, the only state whose staleness is asked: when it last ran
    # (or was created). None otherwise: parsing two timestamps of every placement of every
    # component a batch touches was a tenth of storing and evaluating the batch.
    unknown_since: datetime | None
    interval_s: int
    quorum: int
    slug: str
    location: str

    @property
    def where(self) -> str:
        return f"{self.slug}@{self.location}"


def maintenance_active(component: Component, now: datetime) -> bool:
    return Maintenance.objects.filter(components=component, scheduled_for__lte=now, scheduled_until__gt=now,
                                      cancelled=False).exists()


def component_derive(component: Component, now: datetime) -> Derived:
    return components_derive([component], now)[component.id]


def components_derive(components: list[Component], now: datetime) -> dict[int, Derived]:
    """Component id → what its placements say now. Four queries however many components: the
    evaluation of a batch of runs derives every component they touch at once. Placements that are
    up are counted per probe, in the database: a status only needs their number (the quorum), and
    nearly all of them are up, so a batch reads a row per probe instead of one per placement."""
    ids = [c.id for c in components]
    probes_of: dict[int, set[int]] = defaultdict(set)
    for component_id, probe_id in Component.probes.through.objects.filter(component_id__in=ids) \
            .values_list("component_id", "probe_id"):
        probes_of[component_id].add(probe_id)
    probe_ids = set().union(*probes_of.values())
    enabled = ProbeLocation.objects.filter(probe_id__in=probe_ids, probe__enabled=True)
    up: dict[int, tuple[int, int]] = {probe_id: (count, quorum) for probe_id, quorum, count in (
        enabled.filter(state=PlacementState.UP).values_list("probe_id", "probe__quorum")
        .annotate(count=Count("id")).order_by())}
    others: dict[int, list[_Placement]] = defaultdict(list)
    for row in (enabled.exclude(state=PlacementState.UP)
                .annotate(unknown_since=Case(When(state=PlacementState.UNKNOWN,
                                                  then=Coalesce("last_run_at", "created_at"))))
                .order_by("id").values_list("probe_id", "state", "unknown_since", "probe__interval_s",
                                            "probe__quorum", "probe__slug", "location__name")):
        others[row[0]].append(_Placement(*row))
    in_maintenance = set(Maintenance.components.through.objects.filter(
        component_id__in=ids, maintenance__scheduled_for__lte=now, maintenance__scheduled_until__gt=now,
        maintenance__cancelled=False).values_list("component_id", flat=True))
    return {c.id: _derive(c, [p for probe_id in sorted(probes_of[c.id]) for p in others[probe_id]],
                          {probe_id: up[probe_id] for probe_id in probes_of[c.id] if probe_id in up},
                          now, maintenance=c.id in in_maintenance)
            for c in components}


def _derive(component: Component, placements: list[_Placement], up: dict[int, tuple[int, int]], now: datetime, *,
            maintenance: bool) -> Derived:
    """A component's status from its enabled placements: those not up (`placements`) one by one,
    and those up as a count per probe (`up`: probe id → (count, the probe's quorum))."""
    stale = any(p.state == PlacementState.UNKNOWN and _stale(None, p.unknown_since, p.interval_s, now)
                for p in placements)
    if maintenance:
        return Derived(ComponentStatus.MAINTENANCE, stale, "maintenance window")
    known = [p for p in placements if p.state != PlacementState.UNKNOWN]
    if not known and not up:
        # Nothing measured (no run yet, no probe enabled, no fresh run): no data, never a claim of
        # health, and not counted as up.
        return Derived(ComponentStatus.UNKNOWN, stale or bool(placements),
                       "no probe data" if placements else "no probe enabled")
    # Per probe with a known placement: (placements known, the probe's quorum, those failing).
    by_probe: dict[int, list] = {probe_id: [count, quorum, []] for probe_id, (count, quorum) in up.items()}
    degraded = []
    for p in known:
        group = by_probe.setdefault(p.probe_id, [0, p.quorum, []])
        group[0] += 1
        if p.state == PlacementState.FAILING:
            group[2].append(p)
        elif p.state == PlacementState.DEGRADED:
            degraded.append(p)
    majors, failing_any = 0, []
    for size, quorum, failing in by_probe.values():
        if len(failing) >= min(quorum or size // 2 + 1, size):
            majors += 1
        failing_any += failing
    where = lambda ps: ", ".join(sorted({p.where for p in ps}))  # noqa: E731
    if majors == len(by_probe):
        return Derived(ComponentStatus.MAJOR, stale, f"failing at quorum: {where(failing_any)}")
    if failing_any:
        return Derived(ComponentStatus.PARTIAL, stale, f"failing: {where(failing_any)}")
    if degraded:
        return Derived(ComponentStatus.DEGRADED, stale, f"degraded: {where(degraded)}")
    return Derived(ComponentStatus.OPERATIONAL, stale, "every probe location up")


def _evidence_time(component: Component, new: str, now: datetime) -> datetime:
    """When the change really happened, from the runs: a worsening from the start of the first
    failing run of the placement that tipped it, an improvement from the start of the first
    successful run of the latest recovery."""
    placements = list(ProbeLocation.objects.filter(probe__components=component, probe__enabled=True))
    if STATUS_SEVERITY[new] > STATUS_SEVERITY[component.status]:
        times = [p.streak_started_at for p in placements if p.state == PlacementState.FAILING and p.streak_started_at]
        return max(times) if times and new in OUTAGE else now
    # Only a recovery measured since the component's last change counts; none (a location that
    # went silent) dates the change when it is made.
    since = component.status_changes.order_by("-changed_at").values_list("changed_at", flat=True).first()
    times = [p.recovery_started_at for p in placements
             if p.state != PlacementState.FAILING and p.recovery_started_at and p.consecutive_failures == 0
             and p.last_failure_at and (since is None or p.recovery_started_at >= since)]
    return max(times) if times and component.status in OUTAGE else now


def component_refresh(component: Component, now: datetime, run: Run | None = None,
                      derived: Derived | None = None) -> ComponentStatusChange | None:
    derived = derived or component_derive(component, now)
    if derived.stale != component.stale:
        Component.objects.filter(id=component.id).update(stale=derived.stale)
        component.stale = derived.stale
        public_change()
    if derived.status == component.status:
        return None
    at = _evidence_time(component, derived.status, now) if derived.status != ComponentStatus.MAINTENANCE else now
    return component_set_status(component=component, status=derived.status, reason=derived.reason, run=run, at=at)


def component_set_status(*, component: Component, status: str, reason: str, run: Run | None = None,
                         at: datetime | None = None) -> ComponentStatusChange | None:
    if component.status == status:
        return None
    from detection.rollups import status_interval_add

    at = at or (run.started_at if run else timezone.now())
    previous = component.status_since or (component.status_changes.order_by("-changed_at", "-id")
                                          .values_list("changed_at", flat=True).first())
    if previous and at < previous:
        at = previous  # history stays ordered: intervals never overlap
    # The status it leaves is now a closed interval: into the rollups, which uptime reads.
    status_interval_add(component.id, component.status, max(previous or component.created_at, component.created_at),
                        at)
    change = ComponentStatusChange.objects.create(component=component, old_status=component.status, new_status=status,
                                                  reason=reason[:300], run=run, changed_at=at)
    Component.objects.filter(id=component.id).update(status=status, status_since=at, updated_at=timezone.now())
    component.status, component.status_since = status, at
    public_change()
    return change


# --- entry points --------------------------------------------------------------------------------

def run_evaluate(run: Run) -> None:
    """Evaluate one recorded run (see runs_evaluate)."""
    runs_evaluate([run])


def runs_evaluate(runs: list[Run]) -> None:
    """Evaluate recorded runs together: placement states, their components, their platforms'
    incidents, the rollups. A worker stores the runs that finish while it evaluates the previous
    ones as one batch (probes.recorder), so each row below is read, locked and written once per
    batch rather than once per run, and each platform's lock is taken once per batch.

    Lock order, everywhere: platforms by id, placements by id, components by id, then rollup rows.
    Only the rows named (`of`), so the probe rows and the dispatcher's claims are never held up.
    Runs apply in the order they started, as they would one by one."""
    from detection import budget, incidents
    from detection import rollups

    if not runs:
        return
    runs = sorted(runs, key=lambda r: (r.started_at, r.id or 0))
    with transaction.atomic():
        platform_of = dict(Probe.objects.filter(id__in={r.probe_id for r in runs}).values_list("id", "platform_id"))
        platforms = {p.id: p for p in Platform.objects.select_for_update(of=("self",))
                     .filter(id__in=set(platform_of.values())).order_by("id")}
        wanted = {(r.probe_id, r.location_id) for r in runs}
        placements = {(p.probe_id, p.location_id): p for p in (
            ProbeLocation.objects.select_for_update(of=("self",)).select_related("probe", "location")
            .filter(probe_id__in={k[0] for k in wanted}, location_id__in={k[1] for k in wanted}).order_by("id"))
            if (p.probe_id, p.location_id) in wanted}
        before = {key: [getattr(p, name) for name in EVALUATED_FIELDS] for key, p in placements.items()}
        counted: list[Run] = []
        for run in runs:
            placement = placements[(run.probe_id, run.location_id)]
            if placement.last_run_at is None or run.started_at > placement.last_run_at:
                placement.last_run_at = run.started_at  # runs can finish out of order
            if budget.run_is_self_inflicted(run, platforms[platform_of[run.probe_id]]):
                continue  # on record and reported to on-call, but not evidence against the platform
            counted.append(run)
            _observe(placement, run)
        # Only the placements and fields that moved (a successful run moves five or six fields).
        moved = [key for key, p in placements.items()
                 if any(getattr(p, name) != old for name, old in zip(EVALUATED_FIELDS, before[key]))]
        changed = {name for key in moved
                   for name, old in zip(EVALUATED_FIELDS, before[key]) if getattr(placements[key], name) != old}
        if moved:
            rollups.rows_write(ProbeLocation, [placements[key] for key in moved],
                               [f for f in EVALUATED_FIELDS if f in changed])
        if not counted:
            return
        # Each component once, as of the latest run that concerns it.
        latest_of_probe = {run.probe_id: run for run in counted}
        links, feeds = defaultdict(list), defaultdict(list)
        for component_id, probe_id in Component.probes.through.objects.filter(probe_id__in=latest_of_probe) \
                .values_list("component_id", "probe_id"):
            links[component_id].append(latest_of_probe[probe_id])
            feeds[probe_id].append(component_id)
        components = list(Component.objects.select_for_update(of=("self",)).filter(id__in=links).order_by("id"))
        rollups.rollups_add(counted, feeds=feeds)
        if components:
            now = max(run.finished_at for run in counted)
            derived = components_derive(components, now)
            for component in components:
                run = max(links[component.id], key=lambda r: r.started_at)
                component_refresh(component, run.finished_at, run, derived=derived[component.id])

        # An incident only where one is open or a component is in trouble: the same outcome as
        # incidents_reconcile's own first test, without its queries when all is well.
        finished = defaultdict(list)
        for run in counted:
            finished[platform_of[run.probe_id]].append(run.finished_at)
        for platform_id in incidents.platforms_needing_reconcile(list(finished)):
            incidents.incidents_reconcile(platforms[platform_id], max(finished[platform_id]))


def platform_refresh(platform: Platform, now: datetime) -> None:
    platforms_refresh([platform.id], now)


def platforms_refresh(platform_ids, now: datetime) -> None:
    """Re-derive the components of these platforms (an iterable of ids, or a queryset of them) as
    of `now` — staleness, maintenance windows — and reconcile their incidents, in one transaction
    and a handful of queries however many platforms: the watchdog does this for every platform
    each pass. Lock order as in runs_evaluate: platforms by id, then components by id. A component
    fed by several platforms is derived once, from all its placements, as each platform's own
    refresh would derive it."""
    from detection import incidents

    with transaction.atomic():
        platforms = {p.id: p for p in Platform.objects.select_for_update(of=("self",))
                     .filter(id__in=platform_ids).order_by("id")}
        if not platforms:
            return
        ids = Component.objects.filter(probes__platform_id__in=list(platforms)).values_list("id", flat=True).distinct()
        components = list(Component.objects.select_for_update(of=("self",)).filter(id__in=list(ids)).order_by("id"))
        derived = components_derive(components, now) if components else {}
        for component in components:
            component_refresh(component, now, derived=derived[component.id])
        # incidents_reconcile has nothing to do on a platform without an open automatic incident
        # or a component in trouble (its own first test): skipped without its queries.
        for platform_id in sorted(incidents.platforms_needing_reconcile(list(platforms))):
            incidents.incidents_reconcile(platforms[platform_id], now)


def maintenance_refresh(*, maintenance: Maintenance, also=()) -> None:
    """Apply a maintenance window just saved (or cancelled) at once rather than at the watchdog's
    next pass; `also` names components just taken out of it, which need their status back."""
    components = [*maintenance.components.all(), *also]
    platforms_refresh(Platform.objects.filter(probes__components__in=components).values("id"), timezone.now())


def watchdog(now: datetime | None = None) -> dict:
    """Mark placements with no run for 3 intervals unknown, tell on-call about silent locations,
    and move components across maintenance boundaries. Never opens a platform incident."""
    from detection import budget, heartbeat

    now = now or timezone.now()
    went_stale = 0
    # Every pass over every placement: values, not model instances (thousands of placements), one
    # query for the stale placements and the silent locations below.
    enabled = list(ProbeLocation.objects.filter(probe__enabled=True)
                   .values_list("id", "state", "location__name", "last_run_at", "created_at", "probe__interval_s"))
    for placement_id, state, _, last_run_at, created_at, interval_s in enabled:
        if state != PlacementState.UNKNOWN and _stale(last_run_at, created_at, interval_s, now):
            with transaction.atomic():
                locked = ProbeLocation.objects.select_for_update().select_related("probe").get(id=placement_id)
                if locked.state != PlacementState.UNKNOWN and is_stale(locked, now):
                    PlacementStateChange.objects.create(
                        placement=locked, old_state=locked.state, new_state=PlacementState.UNKNOWN,
                        cause=f"no run for {STALE_AFTER_INTERVALS} intervals", changed_at=now)
                    # What it knew is too old to build on: when runs resume, streaks start afresh.
                    ProbeLocation.objects.filter(id=locked.id).update(
                        state=PlacementState.UNKNOWN, state_since=now, consecutive_failures=0,
                        consecutive_successes=0, consecutive_slow=0, consecutive_fast=0, recent="", flapping=False,
                        streak_started_at=None, streak_previous_success_at=None, recovery_started_at=None,
                        detected_at=None)
                    went_stale += 1
    platforms_refresh(Platform.objects.filter(enabled=True).values("id"), now)
    budget.problems_recheck(now)
    # With the scheduler silent no location was sent anything to run: that is one problem, the
    # scheduler's (detection.heartbeat), not one per location.
    scheduler_silent = heartbeat.scheduler_silent(now)
    stale_locations = []
    seen_at: dict[str, list[tuple]] = defaultdict(list)
    for _, _, name, *seen in enabled:
        seen_at[name].append(seen)
    for subject, placements in sorted(seen_at.items()):
        if all(_stale(*seen, now) for seen in placements):
            stale_locations.append(subject)
            if scheduler_silent:
                continue
            newest = max((last_run_at for last_run_at, *_ in placements if last_run_at), default=None)
            problem_open(OwnProblem.Kind.STALE_LOCATION, subject,
                         f"no run from {subject} since {newest:%Y-%m-%d %H:%M:%S %Z}" if newest
                         else f"no run from {subject} yet")
        else:
            problem_resolve(OwnProblem.Kind.STALE_LOCATION, subject)
    maintenances_announce(now)
    # Problems opened or resolved elsewhere (detection.budget) are announced here; the event's key
    # makes an announcement made twice one notification.
    recent = now - timedelta(minutes=10)
    for problem_id in OwnProblem.objects.filter(Q(opened_at__gte=recent) | Q(resolved_at__gte=recent)) \
            .values_list("id", flat=True):
        announce(problem_changed, problem_id=problem_id)
    return {"went_stale": went_stale, "stale_locations": stale_locations}


def maintenances_announce(now: datetime) -> None:
    """Announce the maintenances that have started or ended (within the last hour): every 10 s,
    so the listener makes each announcement once (by key)."""
    for maintenance in Maintenance.objects.filter(cancelled=False, scheduled_for__lte=now,
                                                  scheduled_until__gt=now - timedelta(hours=1)):
        phase = "started" if now < maintenance.scheduled_until else "ended"
        announce(maintenance_boundary, maintenance_id=maintenance.id, phase=phase)
