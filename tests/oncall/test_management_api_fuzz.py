"""Schemathesis drives every operation of the management API from its own OpenAPI schema, in
process through the WSGI app, with a write token: whatever it sends, the answer is never a 5xx."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings

from probes.models import Account, Location, Platform, Probe, Run
from detection.models import Component, ComponentGroup, Incident, Maintenance
from statuspage.models import apitoken_create
from vigie.wsgi import application

# CI runs the same examples every time; VIGIE_FUZZ_RANDOM=1 explores new ones.
DERANDOMIZE = not os.environ.get("VIGIE_FUZZ_RANDOM")

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

# Detail routes point at these rows (made anew if a DELETE took them), so bodies are tried
# against real objects rather than ending in a 404.
EXISTING = {
    "/component-groups/": {"id": "fuzzgroup001"},
    "/components/": {"id": "fuzzcompo001"},
    "/incidents/{incident_id}/updates/": {"incident_id": "fuzzincid001"},
    "/incidents/": {"id": "fuzzincid001"},
    "/maintenances/": {"id": "fuzzmaint001"},
    "/probes/": {"slug": "fuzz-probe"},
    "/platforms/": {"slug": "fuzz-platform"},
}


def _seed() -> None:
    now = timezone.now()
    location, _ = Location.objects.get_or_create(name="atlanta")
    platform, _ = Platform.objects.get_or_create(slug="fuzz-platform", defaults={
        "name": "Fuzz", "kind": "sandbox", "base_url": "http://127.0.0.1:9"})
    Account.objects.get_or_create(platform=platform, role="prober", defaults={"username": "p", "token": "t0ken"})
    probe, _ = Probe.objects.get_or_create(slug="fuzz-probe", defaults={"name": "Post", "platform": platform,
                                                                        "action": "post"})
    probe.placements.get_or_create(location=location)
    group, _ = ComponentGroup.objects.get_or_create(public_id="fuzzgroup001", defaults={"name": "Fuzz writes"})
    component, _ = Component.objects.get_or_create(public_id="fuzzcompo001", defaults={"name": "Posting",
                                                                                       "group": group})
    component.probes.add(probe)
    Incident.objects.get_or_create(public_id="fuzzincid001", defaults={"title": "Fuzz", "started_at": now,
                                                                       "detected_at": now})
    Maintenance.objects.get_or_create(public_id="fuzzmaint001", defaults={
        "title": "Fuzz", "scheduled_for": now + timedelta(days=1), "scheduled_until": now + timedelta(days=1, hours=1)})
    if not Run.objects.exists():
        Run.objects.create(probe=probe, location=location, scheduled_for=now, started_at=now, finished_at=now,
                           latency_ms=10, outcome="failure", failure_class="timeout")


@pytest.fixture
def write_token(db) -> str:
    return apitoken_create(name="fuzzer", scope="write")[1]


@pytest.fixture(autouse=True)
def no_throttling(request):
    """One token sends hundreds of requests here: the API's rate limits (tests/statuspage/test_security.py)
    are lifted. (pytest-django's `settings`, fetched by name: hypothesis's is imported above.)"""
    django_settings = request.getfixturevalue("settings")
    django_settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK,
                                      "DEFAULT_THROTTLE_RATES": {"api_read": None, "api_write": None}}


@pytest.fixture
def keep_connection():
    """The WSGI handler closes the database connection after each request, which would end the
    test's transaction; Django's own test client switches that off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_request_gets_a_server_error(case, write_token, keep_connection):
    _seed()
    path = case.operation.path.removeprefix("/api/v1")
    for prefix, values in EXISTING.items():
        if path.startswith(prefix):
            for name, value in values.items():
                if case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = value
            break
    case.call_and_validate(headers={"Authorization": f"Bearer {write_token}"},
                           checks=[schemathesis.checks.not_a_server_error])
