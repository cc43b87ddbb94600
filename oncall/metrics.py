"""`/metrics` for Prometheus: figures read from the database at scrape time, never kept in a process.

Runs are recorded by Celery workers on other machines and served by several web processes, so
in-process counters would each see a slice and restart at zero. Instead one collector reads the
hourly rollups (`probes.models.RunHour`) and the current state when Prometheus scrapes, in a fixed
number of queries whatever the length of history: counters are sums over all hours, so they only
grow while rows are only added to. Deleting rollups (a probe, a location, a retention job) lowers
them; Prometheus reads that as a counter reset, and `rate()`/`increase()` stay right.
"""
from __future__ import annotations

import hmac
import ipaddress
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Count, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from detection.evaluation import is_stale
from detection.models import ComponentStatus, Impact, Incident, OwnProblem
from probes.lease import lease_leader
from probes.models import Artifact, Location, Platform, Probe, ProbeLocation, RunHour
from detection.rollups import BUCKETS_PER_DOUBLING, bucket_upper_ms
from official.models import IncidentAcknowledgement, Indicator, OfficialSource
from statuspage import selectors

# Upper bounds of the latency histogram, in seconds: the usual round ones, so that an alert or an
# Apdex reads `le="1.0"`. The rollups keep log buckets with edges at 2^(b/4) ms, and none of these
# bounds is such an edge, so each bound takes the log buckets whose upper edge is at or below it
# (a bound on an edge would be exact): a count never includes a run slower than its bound, and
# may miss runs up to one log bucket (19%) faster than it.
LATENCY_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PROBE_LABELS = ["probe", "platform", "action", "location"]
Labeller = Callable[[int, int], "list[str] | None"]
# A request that passed through a proxy comes from loopback however far away its sender is.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def latency_buckets(histogram: dict[int, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets (`le` in seconds, +Inf last) and an approximate sum in seconds
    from a rollup histogram (log bucket index → count). The sum takes each run at its bucket's
    midpoint: the rollups do not keep exact latencies."""
    per_bound = [0] * len(LATENCY_BOUNDS_S)
    total, approximate_sum_ms = 0, 0.0
    for bucket, count in histogram.items():
        upper_ms = bucket_upper_ms(bucket)
        lower_ms = 0.0 if bucket <= 0 else 2 ** ((bucket - 1) / BUCKETS_PER_DOUBLING)
        total += count
        approximate_sum_ms += count * (lower_ms + upper_ms) / 2
        for i, bound_s in enumerate(LATENCY_BOUNDS_S):
            if upper_ms <= bound_s * 1000 * (1 + 1e-9):  # tolerance: exact edges survive float maths
                per_bound[i] += count
                break
    buckets, seen = [], 0
    for bound_s, count in zip(LATENCY_BOUNDS_S, per_bound):
        seen += count
        buckets.append((floatToGoString(bound_s), seen))
    buckets.append(("+Inf", total))
    return buckets, approximate_sum_ms / 1000


def _json_sums(field: str) -> Iterable[tuple[int, int, str, int]]:
    """(probe_id, location_id, key, summed count) over every RunHour's JSON `field`, summed in SQL
    where the database can, so what is sent back grows with keys, not with hours."""
    table = connection.ops.quote_name(RunHour._meta.db_table)
    column = connection.ops.quote_name(RunHour._meta.get_field(field).column)
    if connection.vendor == "postgresql":
        sql = (f"SELECT h.probe_id, h.location_id, j.key, SUM(j.value::bigint) FROM {table} h "
               f"CROSS JOIN LATERAL jsonb_each_text(h.{column}) AS j(key, value) GROUP BY 1, 2, 3")
    elif connection.vendor == "sqlite":
        sql = (f"SELECT h.probe_id, h.location_id, j.key, SUM(j.value) FROM {table} h, json_each(h.{column}) j "
               f"GROUP BY 1, 2, 3")
    else:  # any other database: the same sums, added up here
        sums: Counter = Counter()
        for probe_id, location_id, counts in RunHour.objects.values_list("probe_id", "location_id", field).iterator():
            for key, count in counts.items():
                sums[probe_id, location_id, key] += count
        return [(p, loc, key, n) for (p, loc, key), n in sums.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


class VigieCollector(Collector):
    """Every `vigie_*` metric, read from the database at each scrape."""

    def collect(self) -> Iterator[Metric]:
        probes = {p["id"]: p for p in Probe.objects.values("id", "slug", "platform__slug", "action")}
        locations = dict(Location.objects.values_list("id", "name"))

        def labels(probe_id: int, location_id: int) -> list[str] | None:
            probe = probes.get(probe_id)
            if probe is None or location_id not in locations:  # deleted between two queries
                return None
            return [probe["slug"], probe["platform__slug"], probe["action"], locations[location_id]]

        yield from self._runs(labels)
        yield from self._latency(labels)
        yield from self._placements(probes, locations)
        yield from self._components()
        yield from self._incidents()
        yield from self._own_problems()
        yield from self._official()
        yield from _faults(labels, locations)  # issue 20
        yield from self._scheduler()
        yield from self._leftovers()

    def _runs(self, labels: Labeller) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "vigie_probe_runs", "Runs recorded, by probe, location and outcome (summed from the hourly rollups).",
            labels=[*PROBE_LABELS, "outcome"])
        totals = (RunHour.objects.values("probe_id", "location_id")
                  .annotate(total=Sum("runs"), failed=Sum("failures")).order_by("probe_id", "location_id"))
        for row in totals:
            names = labels(row["probe_id"], row["location_id"])
            if names:
                runs.add_metric([*names, "success"], row["total"] - row["failed"])
                runs.add_metric([*names, "failure"], row["failed"])
        yield runs
        failures = CounterMetricFamily(
            "vigie_probe_failures", "Failed runs, by probe, location and failure class.",
            labels=[*PROBE_LABELS, "failure_class"])
        for probe_id, location_id, failure_class, count in sorted(_json_sums("by_class")):
            names = labels(probe_id, location_id)
            if names:
                failures.add_metric([*names, failure_class], int(count))
        yield failures

    def _latency(self, labels: Labeller) -> Iterator[Metric]:
        histograms: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
        for probe_id, location_id, bucket, count in _json_sums("latency"):
            histograms[probe_id, location_id][int(bucket)] = int(count)
        family = HistogramMetricFamily(
            "vigie_probe_latency_seconds",
            "Latency of successful runs (failures excluded), from the rollups' log buckets: a bound takes the "
            "runs whose bucket ends at or below it, so counts may be short by one bucket (19%); the sum takes "
            "each run at its bucket's midpoint.",
            labels=PROBE_LABELS)
        for (probe_id, location_id), histogram in sorted(histograms.items()):
            names = labels(probe_id, location_id)
            if names:
                buckets, total_s = latency_buckets(histogram)
                family.add_metric(names, buckets, total_s)
        yield family

    def _placements(self, probes: dict[int, dict], locations: dict[int, str]) -> Iterator[Metric]:
        stale = GaugeMetricFamily(
            "vigie_placements_stale",
            "1 when an enabled probe has had no run at a location for 3 of its intervals, else 0.",
            labels=PROBE_LABELS)
        last_run = GaugeMetricFamily(
            "vigie_placement_last_run_timestamp_seconds", "Start of the latest run of a probe at a location.",
            labels=PROBE_LABELS)
        now = timezone.now()
        placements = (ProbeLocation.objects.filter(probe__enabled=True).select_related("probe")
                      .only("probe_id", "location_id", "last_run_at", "created_at", "probe__interval_s")
                      .order_by("probe_id", "location_id"))
        for placement in placements:
            probe = probes.get(placement.probe_id)
            if probe is None or placement.location_id not in locations:
                continue
            names = [probe["slug"], probe["platform__slug"], probe["action"], locations[placement.location_id]]
            stale.add_metric(names, 1 if is_stale(placement, now) else 0)
            if placement.last_run_at:
                last_run.add_metric(names, placement.last_run_at.timestamp())
        yield stale
        yield last_run

    def _components(self) -> Iterator[Metric]:
        # A state set, one series per status with 1 on the current one, so alerts and panels select
        # by name (`status="major_outage"`) rather than by a severity number that maintenance,
        # neither better nor worse than operational, would not fit into.
        status = GaugeMetricFamily(
            "vigie_component_status", "1 for the component's current status, 0 for the others.",
            labels=["component", "component_id", "status"])
        stale = GaugeMetricFamily(
            "vigie_component_stale", "1 when no fresh run feeds the component (the page says monitoring is delayed).",
            labels=["component", "component_id"])
        for component in selectors.components():
            for value in ComponentStatus.values:
                status.add_metric([component.name, component.public_id, value], 1 if component.status == value else 0)
            stale.add_metric([component.name, component.public_id], 1 if component.stale else 0)
        yield status
        yield stale

    def _incidents(self) -> Iterator[Metric]:
        counts = dict(Incident.objects.filter(status__in=selectors.UNRESOLVED)
                      .annotate(effective=Coalesce(NullIf("impact_override", Value("")), "impact"))
                      .values_list("effective").annotate(n=Count("id")).order_by())
        family = GaugeMetricFamily("vigie_incidents_open", "Unresolved incidents, by impact.", labels=["impact"])
        for impact in Impact.values:
            family.add_metric([impact], counts.get(impact, 0))
        yield family

    def _own_problems(self) -> Iterator[Metric]:
        counts = dict(OwnProblem.objects.filter(resolved_at__isnull=True).values_list("kind")
                      .annotate(n=Count("id")).order_by())
        family = GaugeMetricFamily("vigie_own_problems_open", "Vigie's own open problems (stale locations, "
                                   "probe budget), by kind.", labels=["kind"])
        for kind in OwnProblem.Kind.values:
            family.add_metric([kind], counts.get(kind, 0))
        yield family

    def _official(self) -> Iterator[Metric]:
        """What each platform declares (a state set, like components), whether its source could be
        read, and how long the platform took, or is taking, to acknowledge Vigie's incidents."""
        declared = GaugeMetricFamily(
            "vigie_official_status", "1 for the status the platform currently declares (its official source's "
            "indicator; unreachable: Vigie could not read it), 0 for the others.", labels=["platform", "indicator"])
        reachable = GaugeMetricFamily(
            "vigie_official_source_reachable", "1 when the platform's official source was read at its last poll, "
            "0 when it was unreachable or not read yet.", labels=["platform"])
        last_read = GaugeMetricFamily(
            "vigie_official_last_read_timestamp_seconds", "When the platform's official source was last read.",
            labels=["platform"])
        sources = OfficialSource.objects.filter(enabled=True).values_list("platform__slug", "indicator", "last_ok_at")
        for platform, indicator, last_ok_at in sources.order_by("platform__slug"):
            for value in Indicator.values:
                declared.add_metric([platform, value], 1 if indicator == value else 0)
            reachable.add_metric([platform], 0 if indicator in (Indicator.UNREACHABLE, Indicator.UNKNOWN) else 1)
            if last_ok_at:
                last_read.add_metric([platform], last_ok_at.timestamp())
        yield declared
        yield reachable
        yield last_read
        acknowledged = GaugeMetricFamily(
            "vigie_official_time_to_acknowledge_seconds", "Official first sign − measured start, for the open "
            "incidents and each platform's latest one, once the platform acknowledged them (negative: it "
            "declared first).", labels=["platform", "incident"])
        waiting = GaugeMetricFamily(
            "vigie_official_unacknowledged_seconds", "How long an open incident has gone unacknowledged by its "
            "platform.", labels=["platform", "incident"])
        now = timezone.now()
        fields = ("source__platform__slug", "incident__public_id", "incident__started_at", "acknowledged_at")
        latest = OfficialSource.objects.annotate(latest=Subquery(
            IncidentAcknowledgement.objects.filter(source=OuterRef("pk")).order_by("-incident__started_at")
            .values("id")[:1])).values("latest")
        rows = (IncidentAcknowledgement.objects.filter(Q(incident__status__in=selectors.UNRESOLVED) | Q(id__in=latest))
                .values_list(*fields, "incident__status").order_by("incident__started_at"))
        for platform, public_id, started_at, acknowledged_at, status in rows:
            if acknowledged_at is not None:
                acknowledged.add_metric([platform, public_id], (acknowledged_at - started_at).total_seconds())
            elif status in selectors.UNRESOLVED:
                waiting.add_metric([platform, public_id], max(0.0, (now - started_at).total_seconds()))
        yield acknowledged
        yield waiting

    def _scheduler(self) -> Iterator[Metric]:
        leader = lease_leader()
        family = GaugeMetricFamily("vigie_scheduler_leader", "The scheduler (celery beat) holding the scheduler "
                                   "lease, by holder (machine:pid:nonce): 1 while one leads; 0 with holder=\"\" "
                                   "when none does.", labels=["holder"])
        family.add_metric([leader.holder if leader else ""], 1 if leader else 0)
        yield family


    def _leftovers(self) -> Iterator[Metric]:
        rows = {row["account__platform__slug"]: row for row in (
            Artifact.objects.values("account__platform__slug")
            .annotate(swept=Sum("sweeps"), lost=Sum("deletes_lost"),
                      pending=Count("id", filter=Q(cleaned_at__isnull=True))).order_by())}
        swept = CounterMetricFamily(
            "vigie_leftovers_swept", "Leftovers of Vigie's own runs found on the platform by the periodic sweep "
            "(probes.sweep) and put back to be removed.", labels=["platform"])
        lost = CounterMetricFamily(
            "vigie_lost_deletes", "Deletes the platform answered but lost (the post still readable), each deleted "
            "again.", labels=["platform"])
        pending = GaugeMetricFamily(
            "vigie_artifacts_pending", "Artifacts of Vigie's runs not removed yet (cleanup retried).", labels=["platform"])
        for platform in Platform.objects.order_by("slug").values_list("slug", flat=True):
            row = rows.get(platform, {})
            swept.add_metric([platform], row.get("swept") or 0)
            lost.add_metric([platform], row.get("lost") or 0)
            pending.add_metric([platform], row.get("pending") or 0)
        yield swept
        yield lost
        yield pending


# --- Vigie's own faults (issue 20): dead letters, dropped runs, dispatch lateness, dependencies --------

def _faults(labels: Labeller, locations: dict[int, str]) -> Iterator[Metric]:
    from oncall.faults import dependencies
    from probes.drops import LATENESS_BOUNDS_S
    from probes.models import DispatchLateness, DroppedRun, TaskDelivery

    dead = GaugeMetricFamily("vigie_dead_letters", "Task messages set aside after too many deliveries, by task.",
                             labels=["task"])
    for task, n in (TaskDelivery.objects.filter(state=TaskDelivery.State.DEAD).values_list("task_name")
                    .annotate(n=Count("id")).order_by("task_name")):
        dead.add_metric([task], n)
    yield dead
    dropped = CounterMetricFamily(
        "vigie_runs_dropped", "Runs due and not performed, by probe, location and reason (expired, "
        "message_expired, skipped, dead_letter).", labels=[*PROBE_LABELS, "reason"])
    for row in (DroppedRun.objects.values("probe_id", "location_id", "reason").annotate(n=Sum("count"))
                .order_by("probe_id", "location_id", "reason")):
        names = labels(row["probe_id"], row["location_id"])
        if names:
            dropped.add_metric([*names, row["reason"]], row["n"])
    yield dropped
    per_location: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    for location_id, bucket, runs, total_ms in (DispatchLateness.objects.values_list("location_id", "bucket")
                                                .annotate(runs=Sum("runs"), ms=Sum("total_ms")).order_by()):
        per_location[location_id][bucket] = (runs, total_ms)
    lateness = HistogramMetricFamily(
        "vigie_dispatch_lateness_seconds", "How late runs started after their slot (start − slot), by location.",
        labels=["location"])
    for location_id, buckets in sorted(per_location.items()):
        if location_id not in locations:
            continue
        cumulative, seen = [], 0
        for index, bound in enumerate(LATENESS_BOUNDS_S):
            seen += buckets.get(index, (0, 0))[0]
            cumulative.append((floatToGoString(bound), seen))
        cumulative.append(("+Inf", sum(runs for runs, _ in buckets.values())))
        lateness.add_metric([locations[location_id]], cumulative, sum(ms for _, ms in buckets.values()) / 1000)
    yield lateness
    up = GaugeMetricFamily("vigie_dependency_up", "1 when the dependency answered a check within 2 s, else 0.",
                           labels=["dependency"])
    for dependency in dependencies():
        up.add_metric([dependency.name], 1 if dependency.up else 0)
    yield up


# Only Vigie's collector: the client's default process and GC metrics would describe whichever web
# worker answered, a different one at each scrape.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(VigieCollector())


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8")


def _is_loopback(request: HttpRequest) -> bool:
    if any(request.headers.get(header) for header in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read the metrics, or None. With VIGIE_METRICS_TOKEN set, the
    request must carry it as a bearer token; without one, only this machine may scrape."""
    token = settings.VIGIE_METRICS_TOKEN
    if not token:
        if _is_loopback(request):
            return None
        return _text("Metrics are served to this machine only: set VIGIE_METRICS_TOKEN to scrape from elsewhere.",
                     403)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = _text("Send the metrics token: Authorization: Bearer <VIGIE_METRICS_TOKEN>.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="vigie-metrics"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _text("Wrong metrics token.", 403)
    return None


@require_safe
def view(request: HttpRequest) -> HttpResponse:
    if not settings.VIGIE_METRICS_ENABLED:
        raise Http404("Metrics are disabled (VIGIE_METRICS_ENABLED).")
    refused = refusal(request)
    if refused:
        return refused
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(REGISTRY), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
