"""What the on-call dashboard reads: the probe × location matrix, own write usage, incidents and
per-component figures. Every function runs a fixed number of queries, whatever the number of
probes, runs or incidents (tests/oncall/test_views.py counts them)."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean

from django.db.models import Count, F, Max, Q, Window
from django.db.models.functions import RowNumber

from detection.budget import SELF_INFLICTED_SHARE, own_usage
from detection.incidents import format_duration_seconds
from detection.models import Component, Incident, IncidentComponent, Maintenance, OwnProblem
from probes.models import Location, Outcome, PlacementState, Platform, Probe, ProbeLocation, Run
from detection.uptime import ratio, uptime_bars
from official import selectors as official
from statuspage.selectors import shown_status

RUNS_PER_CELL = 10
# Runs older than this many probe intervals are not drawn: bounds the rows the window function
# ranks, so a long history costs nothing. Capped at a day for slow probes.
CELL_HISTORY_INTERVALS = 30
CELL_HISTORY_MAX = timedelta(days=1)
STATS_DAYS = (7, 30, 90)
RECENTLY_RESOLVED = timedelta(days=7)
STATE_SYMBOLS = {PlacementState.UP: "✓", PlacementState.DEGRADED: "!", PlacementState.FAILING: "✕",
                 PlacementState.UNKNOWN: "?"}


@dataclass
class Cell:
    location: Location
    placement: ProbeLocation | None  # None: the probe does not run from this location
    runs: list[Run] = field(default_factory=list)  # oldest first

    @property
    def latest_failure(self) -> Run | None:
        """The latest failing run, when the cell is failing or its latest run failed."""
        if self.placement is None or not self.runs:
            return None
        if self.placement.state != PlacementState.FAILING and self.runs[-1].outcome != Outcome.FAILURE:
            return None
        return next((r for r in reversed(self.runs) if r.outcome == Outcome.FAILURE), None)

    @property
    def symbol(self) -> str:
        return STATE_SYMBOLS.get(self.placement.state, "?") if self.placement else ""


@dataclass
class Row:
    probe: Probe
    cells: list[Cell]


def recent_runs(probe_ids: list[int], since: datetime) -> dict[tuple[int, int], list[Run]]:
    """The last RUNS_PER_CELL runs of each placement since `since`, in one query: a window
    function ranks each placement's runs newest first (index run_latest) and keeps the first ten."""
    ranked = (Run.objects.filter(probe_id__in=probe_ids, started_at__gte=since)
              .annotate(rank=Window(RowNumber(), partition_by=[F("probe_id"), F("location_id")],
                                    order_by=F("started_at").desc()))
              .filter(rank__lte=RUNS_PER_CELL)
              .only("probe_id", "location_id", "started_at", "latency_ms", "outcome", "failure_class", "error",
                    "evidence")
              .order_by("probe_id", "location_id", "started_at"))
    runs: dict[tuple[int, int], list[Run]] = defaultdict(list)
    for run in ranked:
        runs[(run.probe_id, run.location_id)].append(run)
    return runs


def matrix(now: datetime) -> dict:
    probes = list(Probe.objects.filter(enabled=True).select_related("platform").order_by("platform__name", "name"))
    locations = list(Location.objects.order_by("name"))
    placements = {(p.probe_id, p.location_id): p for p in ProbeLocation.objects.filter(probe__enabled=True)}
    longest = max((p.interval_s for p in probes), default=60)
    since = now - min(CELL_HISTORY_MAX, timedelta(seconds=longest * CELL_HISTORY_INTERVALS))
    runs = recent_runs([p.id for p in probes], since) if probes else {}
    rows = []
    for probe in probes:
        cells = [Cell(loc, placements.get((probe.id, loc.id)), runs.get((probe.id, loc.id), [])) for loc in locations]
        rows.append(Row(probe, cells))
    failures = [(row.probe, cell) for row in rows for cell in row.cells if cell.latest_failure]
    states = Counter(p.state for p in placements.values())
    return {"locations": locations, "rows": rows, "failures": failures,
            "matrix_summary": matrix_sentence(states, len(failures))}


def matrix_sentence(states: Counter, failures: int) -> str:
    """The matrix in one sentence: "12 probes run at their locations: 10 healthy, 2 failing. 2 are
    failing now (details below)." """
    total = sum(states.values())
    if not total:
        return "No probe runs anywhere yet."
    summary = ", ".join(f"{states[state]} {state.label.lower()}" for state in PlacementState if states[state])
    head = f"{total} probe location{'s' if total != 1 else ''}: {summary}."
    if not failures:
        return f"{head} None is failing now."
    verb = "is" if failures == 1 else "are"
    return f"{head} {failures} {verb} failing now (details below)."


def write_usage(now: datetime) -> list[dict]:
    """Vigie's own writes per test account against the platform's documented limits."""
    usage = []
    for platform in Platform.objects.filter(enabled=True).prefetch_related("accounts").order_by("name"):
        from detection.budget import platform_limits

        limits = platform_limits(platform.kind, platform.write_limits)
        for account in sorted(platform.accounts.all(), key=lambda a: a.role):
            for rule, used in own_usage(account, limits, now):
                share = used / rule.limit if rule.limit else 0.0
                usage.append({"platform": platform, "account": account, "rule": rule, "used": used, "share": share,
                              "period": format_duration_seconds(rule.period.total_seconds()),
                              "high": share >= SELF_INFLICTED_SHARE})
    return usage


def own_problems() -> list[OwnProblem]:
    return list(OwnProblem.objects.filter(resolved_at__isnull=True).order_by("-opened_at"))


def incidents(now: datetime) -> dict:
    open_ = list(Incident.objects.filter(resolved_at__isnull=True).prefetch_related("components", "updates")
                 .order_by("-started_at"))
    resolved = list(Incident.objects.filter(resolved_at__gte=now - RECENTLY_RESOLVED).prefetch_related("components")
                    .order_by("-resolved_at"))
    # What each platform declares (official/), beside what Vigie measured: its source's health,
    # and each incident's acknowledgement.
    acks = official.acknowledgements(open_ + resolved)
    for incident in open_ + resolved:
        incident.ack = acks.get(incident.id)
    return {"open_incidents": open_, "resolved_incidents": resolved, "declared": official.sources(),
            "unseen": official.unseen_official_incidents(since=now - RECENTLY_RESOLVED)}


def maintenances(now: datetime) -> list[Maintenance]:
    return list(Maintenance.objects.filter(scheduled_until__gte=now, cancelled=False).prefetch_related("components")
                .order_by("scheduled_for"))


def _mean(seconds: list[float]) -> str:
    return format_duration_seconds(fmean(seconds)) if seconds else "—"


def component_stats(now: datetime) -> list[dict]:
    """MTTD, mean time to resolve and uptime per component over 7, 30 and 90 days. One 90-day
    bar per component: its last 7 and 30 days are the 7- and 30-day bars (days end today)."""
    enabled = Q(probes__enabled=True)
    components = list(Component.objects.annotate(
        last_checked=Max("probes__placements__last_run_at", filter=enabled),
        probe_count=Count("probes", filter=enabled, distinct=True)).order_by("position", "name"))
    longest = max(STATS_DAYS)
    bars = uptime_bars(components, now=now, days=longest)
    episodes: dict[int, list[tuple]] = defaultdict(list)
    for row in (IncidentComponent.objects.filter(component__in=components,
                                                 incident__started_at__gte=now - timedelta(days=longest))
                .values_list("component_id", "incident__started_at", "incident__detected_at",
                             "incident__resolved_at")):
        episodes[row[0]].append(row[1:])
    stats = []
    for component in components:
        periods = []
        for days in STATS_DAYS:
            since = now - timedelta(days=days)
            mine = [e for e in episodes[component.id] if e[0] >= since]
            periods.append({
                "days": days,
                "uptime": ratio(bars[component.id].days[-days:]),
                "incidents": len(mine),
                "mttd": _mean([(detected - started).total_seconds() for started, detected, _ in mine]),
                "mttr": _mean([(resolved - started).total_seconds() for started, _, resolved in mine if resolved]),
            })
        # Unknown is told apart as the page does: not measured yet, not monitored, or no data.
        stats.append({"component": component, "periods": periods, "status": shown_status(component),
                      "measured": bars[component.id].measured})
    return stats
