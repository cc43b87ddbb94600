"""/metrics: the figures of recorded runs and the current state, in the Prometheus text format, to
the holder of the token only; and a Grafana dashboard that reads nothing /metrics does not expose."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from detection.evaluation import component_set_status
from detection.models import Component, ComponentStatus, Incident, IncidentStatus, OwnProblem
from probes.models import ProbeLocation, RunHour
from detection.rollups import bucket_of
from detection.simulation import demo_layout, record_run
from oncall.metrics import LATENCY_BOUNDS_S, latency_buckets

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=dt_timezone.utc)
TOKEN = "metrics-token-for-tests-5e1d"
BEARER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
# What the tests record: (location, minutes after T0, latency ms, failure class or "").
POST_RUNS = [
    ("atlanta", 0, 40, ""), ("atlanta", 20, 5000, "server_error"), ("atlanta", 40, 200, ""),
    ("atlanta", 60, 9000, "timeout"), ("atlanta", 80, 700, ""),
    ("sacramento", 0, 70, ""), ("sacramento", 20, 3000, "rate_limited"), ("sacramento", 40, 300, ""),
    ("sacramento", 60, 800, "server_error"), ("sacramento", 80, 1500, ""),
]
SCRAPED_AT = T0 + timedelta(minutes=81)


@pytest.fixture
def token(settings):
    settings.VIGIE_METRICS_ENABLED = True
    settings.VIGIE_METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.fixture
def layout(db):
    return demo_layout(locations=["atlanta", "sacramento"], created_at=T0 - timedelta(days=1))


@pytest.fixture
def recorded(layout):
    """The runs above, failures never two in a row (no incident opens), plus one failed DM run."""
    post = {p.location.name: p for p in ProbeLocation.objects.filter(probe__slug="sandbox-post")
            .select_related("location")}
    for location, minutes, latency_ms, failure_class in POST_RUNS:
        record_run(post[location], T0 + timedelta(minutes=minutes), latency_ms=latency_ms, failure_class=failure_class)
    dm = ProbeLocation.objects.get(probe__slug="sandbox-dm", location__name="atlanta")
    record_run(dm, T0 + timedelta(minutes=80), latency_ms=400, failure_class="quota_exceeded")
    return post


def scrape(client, **headers) -> dict[tuple, float]:
    """The samples of one scrape, by (sample name, sorted labels)."""
    with time_machine.travel(SCRAPED_AT, tick=False):
        response = client.get("/metrics", **{**BEARER, **headers})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples: dict, name: str, **labels) -> dict[tuple, float]:
    """Samples of `name` whose labels include `labels`."""
    return {k: v for k, v in samples.items() if k[0] == name and set(labels.items()) <= set(k[1])}


def post(location: str, **labels) -> dict:
    return {"probe": "sandbox-post", "platform": "sandbox", "action": "post", "location": location, **labels}


def test_the_scrape_counts_the_recorded_runs_by_outcome_per_probe_and_location(client, token, recorded):
    samples = scrape(client)
    for location in ("atlanta", "sacramento"):
        assert value(samples, "vigie_probe_runs_total", **post(location, outcome="success")) == 3
        assert value(samples, "vigie_probe_runs_total", **post(location, outcome="failure")) == 2
    dm = {"probe": "sandbox-dm", "platform": "sandbox", "action": "dm", "location": "atlanta"}
    assert value(samples, "vigie_probe_runs_total", **dm, outcome="failure") == 1
    assert value(samples, "vigie_probe_runs_total", **dm, outcome="success") == 0
    assert sum(series(samples, "vigie_probe_runs_total").values()) == len(POST_RUNS) + 1


def test_failures_are_counted_by_class(client, token, recorded):
    samples = scrape(client)
    assert series(samples, "vigie_probe_failures_total", probe="sandbox-post") == {
        ("vigie_probe_failures_total", tuple(sorted(post(location, failure_class=cls).items()))): n
        for location, cls, n in [("atlanta", "server_error", 1), ("atlanta", "timeout", 1),
                                 ("sacramento", "rate_limited", 1), ("sacramento", "server_error", 1)]}
    assert value(samples, "vigie_probe_failures_total", probe="sandbox-dm", platform="sandbox", action="dm",
                 location="atlanta", failure_class="quota_exceeded") == 1


def test_the_latency_histogram_holds_the_successful_runs_in_cumulative_buckets(client, token, recorded):
    samples = scrape(client)
    for location in ("atlanta", "sacramento"):
        latencies = [ms for place, _, ms, failure in POST_RUNS if place == location and not failure]
        buckets = {dict(k[1])["le"]: v for k, v in series(samples, "vigie_probe_latency_seconds_bucket",
                                                           **post(location)).items()}
        # The recorded latencies sit well inside the bounds, so every bucket is the exact count.
        assert buckets == {**{str(float(le)): sum(ms <= le * 1000 for ms in latencies) for le in LATENCY_BOUNDS_S},
                           "+Inf": len(latencies)}
        assert value(samples, "vigie_probe_latency_seconds_count", **post(location)) == len(latencies)
        total = value(samples, "vigie_probe_latency_seconds_sum", **post(location))
        assert abs(total - sum(latencies) / 1000) <= 0.19 * sum(latencies) / 1000  # within one log bucket
    # The DM's only run failed: no latency to report.
    assert not series(samples, "vigie_probe_latency_seconds_count", probe="sandbox-dm")


def test_a_latency_whose_log_bucket_straddles_a_bound_is_counted_at_the_next_bound():
    # 48 ms is in the log bucket (45.3, 53.8] ms: it cannot be told from 53 ms, so it is not
    # claimed to be under 50 ms.
    buckets, _ = latency_buckets({bucket_of(48): 1})
    assert dict(buckets)["0.05"] == 0 and dict(buckets)["0.1"] == 1


def test_latencies_past_the_last_bound_count_only_at_infinity():
    buckets, total = latency_buckets({bucket_of(45_000): 2})
    assert dict(buckets)["30.0"] == 0 and dict(buckets)["+Inf"] == 2
    assert 2 * 45 * 0.85 <= total <= 2 * 45 * 1.19


def test_component_status_is_a_state_set_with_one_for_the_current_status(client, token, recorded):
    dms = Component.objects.get(name="Direct messages")
    component_set_status(component=dms, status=ComponentStatus.MAJOR, reason="test")
    samples = scrape(client)
    current = series(samples, "vigie_component_status", component="Direct messages")
    assert len(current) == len(ComponentStatus.values)
    assert {dict(k[1])["status"]: v for k, v in current.items()} == {
        s: (1 if s == "major_outage" else 0) for s in ComponentStatus.values}
    # Every component has exactly its stored status at 1 (Posting's alternating runs made it flap: degraded).
    assert {(dict(k[1])["component_id"], dict(k[1])["status"]) for k, v in series(
        samples, "vigie_component_status").items() if v == 1} == set(Component.objects.values_list("public_id",
                                                                                                  "status"))
    assert value(samples, "vigie_component_status", component="Posting",
                 component_id=Component.objects.get(name="Posting").public_id, status="degraded_performance") == 1


def test_open_incidents_are_counted_by_their_effective_impact(client, token, recorded):
    def incident(impact: str, status: str = IncidentStatus.INVESTIGATING, override: str = "") -> None:
        Incident.objects.create(title=f"{impact} {status}", impact=impact, impact_override=override, status=status,
                                started_at=T0, detected_at=T0)

    incident("major")
    incident("minor", status=IncidentStatus.MONITORING)
    incident("minor", override="critical")
    incident("critical", status=IncidentStatus.RESOLVED)
    samples = scrape(client)
    assert {dict(k[1])["impact"]: v for k, v in series(samples, "vigie_incidents_open").items()} == {
        "none": 0, "minor": 1, "major": 1, "critical": 1}


def test_placements_without_a_run_for_three_intervals_are_stale(client, token, recorded):
    samples = scrape(client)
    # Runs ended a minute before the scrape (intervals of 30 s): fresh. The other probes never ran.
    assert value(samples, "vigie_placements_stale", **post("atlanta")) == 0
    assert value(samples, "vigie_placements_stale", **post("sacramento")) == 0
    assert value(samples, "vigie_placements_stale", probe="sandbox-dm", platform="sandbox", action="dm",
                 location="atlanta") == 0
    assert value(samples, "vigie_placements_stale", probe="sandbox-dm", platform="sandbox", action="dm",
                 location="sacramento") == 1
    assert sum(series(samples, "vigie_placements_stale").values()) == ProbeLocation.objects.count() - 3
    last = value(samples, "vigie_placement_last_run_timestamp_seconds", **post("atlanta"))
    assert last == (T0 + timedelta(minutes=80)).timestamp()


def test_own_open_problems_are_counted_by_kind(client, token, recorded):
    OwnProblem.objects.create(kind=OwnProblem.Kind.STALE_LOCATION, subject="atlanta")
    OwnProblem.objects.create(kind=OwnProblem.Kind.PROBE_BUDGET, subject="sandbox", resolved_at=T0)
    samples = scrape(client)
    assert value(samples, "vigie_own_problems_open", kind="stale_location") == 1
    assert value(samples, "vigie_own_problems_open", kind="probe_budget") == 0


def test_a_prometheus_asking_for_openmetrics_gets_it(client, token, recorded):
    with time_machine.travel(SCRAPED_AT, tick=False):
        response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0", **BEARER)
    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(response.content.decode())}
    assert families["vigie_probe_runs"].type == "counter"
    assert families["vigie_probe_latency_seconds"].type == "histogram"


def test_the_number_of_queries_does_not_grow_with_the_hours_of_history(client, token, layout):
    placements = list(ProbeLocation.objects.all())

    def fill(days: int) -> int:
        RunHour.objects.all().delete()
        RunHour.objects.bulk_create(
            RunHour(probe_id=p.probe_id, location_id=p.location_id, hour=T0 - timedelta(hours=h), runs=10, failures=1,
                    by_class={"timeout": 1}, latency={str(bucket_of(100)): 9})
            for p in placements for h in range(24 * days))
        with CaptureQueriesContext(connection) as queries:
            samples = scrape(client)
        hours = 24 * days
        assert value(samples, "vigie_probe_runs_total", **post("atlanta", outcome="success")) == 9 * hours
        assert value(samples, "vigie_probe_failures_total", **post("atlanta", failure_class="timeout")) == hours
        assert value(samples, "vigie_probe_latency_seconds_count", **post("atlanta")) == 9 * hours
        return len(queries)

    assert fill(1) == fill(30)


def test_a_missing_token_is_asked_for(client, token, db):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("authorization,status", [
    (f"Bearer {TOKEN}x", 403), (f"Bearer {TOKEN[:-1]}", 403), (f"Basic {TOKEN}", 401), ("Bearer", 401),
])
def test_a_wrong_token_is_refused(client, token, db, authorization, status):
    response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == status
    assert b"vigie_" not in response.content


def test_with_no_token_set_only_this_machine_may_scrape(client, settings, db):
    settings.VIGIE_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 403
    assert "VIGIE_METRICS_TOKEN" in refused.content.decode()


def test_with_no_token_set_a_request_forwarded_by_a_local_proxy_is_refused(client, settings, db):
    settings.VIGIE_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 403


def test_disabled_metrics_are_not_found(client, token, settings, db):
    settings.VIGIE_METRICS_ENABLED = False
    assert client.get("/metrics", **BEARER).status_code == 404


def test_metrics_are_only_read(client, token, db):
    assert client.post("/metrics", **BEARER).status_code == 405


@pytest.mark.parametrize("name,raw,words", [
    ("VIGIE_METRICS_TOKEN", "short", "at least 16 characters"),
    ("VIGIE_METRICS_ENABLED", "perhaps", "is not a boolean"),
])
def test_a_bad_metrics_setting_stops_start_up_naming_the_variable(name, raw, words, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIE_", "DATABASE_URL", "CELERY_"))}
    env.update({"VIGIE_DATA_DIR": str(tmp_path), name: raw})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert name in result.stderr and words in result.stderr


def _queries(node) -> list[str]:
    """Every PromQL string of a dashboard: panel targets' `expr` and template variables' `query`."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        if isinstance(node.get("query"), str) and "vigie_" in node["query"]:
            found.append(node["query"])
        return found + [q for child in node.values() for q in _queries(child)]
    if isinstance(node, list):
        return [q for child in node for q in _queries(child)]
    return []


def test_the_grafana_dashboard_reads_only_metrics_that_are_exposed(client, token, recorded):
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    OwnProblem.objects.create(kind=OwnProblem.Kind.STALE_LOCATION, subject="atlanta")
    faults_planted()
    exposed = {name for name, _ in scrape(client)}
    queries = _queries(dashboard)
    assert len(queries) >= 8 and all(q.strip() for q in queries)
    used = {name for q in queries for name in re.findall(r"\bvigie_[a-z0-9_]+", q)}
    assert used and used <= exposed, used - exposed
    # Every metric family is on the dashboard somewhere.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exposed}
    assert families <= {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    panel_ids = [p["id"] for p in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


def test_what_platforms_declare_and_their_time_to_acknowledge_are_exposed(client, token, layout):
    from official.models import IncidentAcknowledgement, OfficialSource
    from probes.models import Platform

    platform = Platform.objects.get(slug="sandbox")
    source = OfficialSource.objects.create(platform=platform, kind="statuspage", url="https://status.example",
                                           indicator="unreachable", last_ok_at=T0)
    with time_machine.travel(SCRAPED_AT, tick=False):
        open_one = Incident.objects.create(title="Writes", platform=platform, started_at=T0, detected_at=T0)
        acked = Incident.objects.create(title="DMs", platform=platform, started_at=T0, detected_at=T0)
        IncidentAcknowledgement.objects.create(incident=open_one, source=source)
        IncidentAcknowledgement.objects.create(incident=acked, source=source, acknowledged_at=T0 + timedelta(minutes=47))
        body = client.get("/metrics", **BEARER).content.decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    assert samples[("vigie_official_status", (("indicator", "unreachable"), ("platform", "sandbox")))] == 1
    assert samples[("vigie_official_status", (("indicator", "none"), ("platform", "sandbox")))] == 0
    assert samples[("vigie_official_source_reachable", (("platform", "sandbox"),))] == 0
    assert samples[("vigie_official_time_to_acknowledge_seconds",
                    (("incident", acked.public_id), ("platform", "sandbox")))] == 47 * 60
    assert samples[("vigie_official_unacknowledged_seconds",
                    (("incident", open_one.public_id), ("platform", "sandbox")))] == 81 * 60
# --- Vigie's own faults (issue 20) ------------------------------------------------------------------

def faults_planted() -> None:
    """A dropped run and a dead letter, so that their families have series."""
    from probes.drops import runs_dropped_add
    from probes.models import Location, Probe, TaskDelivery

    now = datetime.now(dt_timezone.utc)
    runs_dropped_add([(Probe.objects.first().id, Location.objects.first().id, "expired", now)])
    TaskDelivery.objects.create(task_id="t-1", task_name="probes.tasks.run_batch", deliveries=4,
                                state=TaskDelivery.State.DEAD, first_seen_at=now, last_seen_at=now, dead_at=now)


def test_it_exports_dropped_runs_dead_letters_lateness_and_dependencies(client, token, recorded):
    from probes.models import Run

    faults_planted()
    text = client.get("/metrics", **BEARER).content.decode()
    assert 'vigie_dead_letters{task="probes.tasks.run_batch"} 1.0' in text
    assert 'reason="expired"} 1.0' in text
    assert 'vigie_dependency_up{dependency="database"} 1.0' in text
    assert 'vigie_dependency_up{dependency="cache"} 1.0' in text
    runs = Run.objects.count()  # each counted once as it was stored (probes.spool.runs_store)
    counts = re.findall(r'vigie_dispatch_lateness_seconds_count\{location="[^"]+"\} ([0-9.]+)', text)
    assert sum(float(c) for c in counts) == runs > 0
