"""The management API: tokens (hashed, scoped, revocable), every resource's writes refused to a
read token, incidents moved through the domain functions, validation naming the field, runs
filtered and paginated, and a platform account's token never sent back."""
from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from probes.models import Account, Location, Platform, Probe, Run
from detection.models import Component, ComponentGroup, Incident, Maintenance
from statuspage.models import ApiToken, apitoken_create, apitoken_digest, apitoken_revoke

PLANTED = "planted-account-token-9c41e7d2a8"


def _client(token: str | None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def read_token(db) -> str:
    return apitoken_create(name="reader", scope="read")[1]


@pytest.fixture
def write_token(db) -> str:
    return apitoken_create(name="writer", scope="write")[1]


@pytest.fixture
def reader(read_token) -> APIClient:
    return _client(read_token)


@pytest.fixture
def writer(write_token) -> APIClient:
    return _client(write_token)


@pytest.fixture
def layout(db):
    """One of everything: a platform with accounts, a probe at a location, a grouped component,
    an incident, a maintenance and a run."""
    location = Location.objects.create(name="atlanta")
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url="http://127.0.0.1:9")
    Account.objects.create(platform=platform, role="prober", username="prober", token=PLANTED)
    probe = Probe.objects.create(name="Post", slug="sandbox-post", platform=platform, action="post")
    probe.placements.create(location=location)
    group = ComponentGroup.objects.create(name="Writes")
    component = Component.objects.create(name="Posting", group=group)
    component.probes.add(probe)
    now = timezone.now()
    incident = Incident.objects.create(title="Posting failing", started_at=now, detected_at=now)
    maintenance = Maintenance.objects.create(title="Upgrade", scheduled_for=now + timedelta(days=1),
                                             scheduled_until=now + timedelta(days=1, hours=1))
    run = Run.objects.create(probe=probe, location=location, scheduled_for=now, started_at=now, finished_at=now,
                             latency_ms=120, outcome="success")
    return {"platform": platform, "probe": probe, "location": location, "group": group, "component": component,
            "incident": incident, "maintenance": maintenance, "run": run}


# --- tokens ---------------------------------------------------------------------------------------

def test_a_token_works_until_it_is_revoked_and_then_gets_401(db):
    token, plain = apitoken_create(name="bot", scope="read")
    assert _client(plain).get("/api/v1/components/").status_code == 200
    apitoken_revoke(prefix=token.prefix)
    response = _client(plain).get("/api/v1/components/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_only_the_digest_of_a_token_is_stored(db):
    token, plain = apitoken_create(name="bot", scope="write")
    assert plain.startswith(f"vigie_{token.prefix}_")
    assert token.digest == apitoken_digest(plain)
    stored = ApiToken.objects.values().get(id=token.id)
    assert not any(plain in str(value) for value in stored.values())


def test_last_used_at_moves_when_the_token_is_used(db):
    token, plain = apitoken_create(name="bot", scope="read")
    assert token.last_used_at is None
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        _client(plain).get("/api/v1/components/")
        first = ApiToken.objects.get(id=token.id).last_used_at
        assert first is not None
        traveller.shift(timedelta(minutes=5))
        _client(plain).get("/api/v1/components/")
        assert ApiToken.objects.get(id=token.id).last_used_at == first + timedelta(minutes=5)


def test_no_token_or_an_unknown_one_gets_401(db):
    assert APIClient().get("/api/v1/components/").status_code == 401
    assert _client("vigie_00000000_nope").get("/api/v1/components/").status_code == 401
    assert _client("vigie_00000000_nope").post("/api/v1/components/", {"name": "X"}, format="json").status_code == 401


def test_the_apitoken_command_creates_lists_and_revokes(db):
    out = StringIO()
    call_command("apitoken", "create", "on-call bot", "--scope", "write", stdout=out, stderr=StringIO())
    plain = out.getvalue().strip()
    token = ApiToken.objects.get(digest=apitoken_digest(plain))
    assert (token.name, token.scope) == ("on-call bot", "write")
    listing = StringIO()
    call_command("apitoken", "list", stdout=listing)
    assert token.prefix in listing.getvalue() and plain not in listing.getvalue()
    call_command("apitoken", "revoke", token.prefix, stdout=StringIO())
    assert ApiToken.objects.get(id=token.id).revoked_at is not None
    assert _client(plain).get("/api/v1/components/").status_code == 401


# --- scopes -----------------------------------------------------------------------------------------

def _writes(layout) -> list[tuple[str, str]]:
    """(method, path) of every write the API offers."""
    ids = {name: layout[name].public_id for name in ("group", "component", "incident", "maintenance")}
    return [
        ("post", "/api/v1/component-groups/"), ("patch", f"/api/v1/component-groups/{ids['group']}/"),
        ("put", f"/api/v1/component-groups/{ids['group']}/"), ("delete", f"/api/v1/component-groups/{ids['group']}/"),
        ("post", "/api/v1/components/"), ("patch", f"/api/v1/components/{ids['component']}/"),
        ("delete", f"/api/v1/components/{ids['component']}/"),
        ("post", "/api/v1/incidents/"), ("patch", f"/api/v1/incidents/{ids['incident']}/"),
        ("post", f"/api/v1/incidents/{ids['incident']}/updates/"),
        ("post", "/api/v1/maintenances/"), ("patch", f"/api/v1/maintenances/{ids['maintenance']}/"),
        ("post", "/api/v1/probes/"), ("patch", "/api/v1/probes/sandbox-post/"),
        ("post", "/api/v1/platforms/"), ("patch", "/api/v1/platforms/sandbox/"),
    ]


def test_a_read_token_reads_every_resource(reader, layout):
    for path in ("component-groups", "components", "incidents", f"incidents/{layout['incident'].public_id}/updates",
                 "maintenances", "probes", "platforms", "runs"):
        assert reader.get(f"/api/v1/{path}/").status_code == 200, path


def test_a_read_token_cannot_write_anything(reader, layout):
    for method, path in _writes(layout):
        response = getattr(reader, method)(path, {"name": "X"}, format="json")
        assert response.status_code == 403, (method, path, response.status_code)
        assert "write" in response.json()["detail"]
    assert ComponentGroup.objects.get().name == "Writes"
    assert Component.objects.count() == 1 and Incident.objects.get().updates.count() == 0


def test_writes_that_do_not_exist_are_refused(writer, layout):
    # Incidents, maintenances, probes and platforms are history or hold it: no DELETE.
    for path in (f"incidents/{layout['incident'].public_id}", f"maintenances/{layout['maintenance'].public_id}",
                 "probes/sandbox-post", "platforms/sandbox", f"runs/{layout['run'].key}"):
        assert writer.delete(f"/api/v1/{path}/").status_code == 405, path
    assert writer.post("/api/v1/runs/", {}, format="json").status_code == 405


# --- incidents ---------------------------------------------------------------------------------------

def test_an_update_posted_through_the_api_shows_on_the_public_page_and_in_the_json(writer, layout):
    incident = layout["incident"]
    response = writer.post(f"/api/v1/incidents/{incident.public_id}/updates/",
                           {"status": "identified", "body": "A bad deploy; rolling back."}, format="json")
    assert response.status_code == 201, response.content
    incident.refresh_from_db()
    assert incident.status == "identified"
    assert "A bad deploy; rolling back." in writer.get(f"/incidents/{incident.public_id}").content.decode()
    document = writer.get("/api/v2/incidents.json").json()
    [listed] = [i for i in document["incidents"] if i["id"] == incident.public_id]
    assert listed["status"] == "identified"
    assert listed["incident_updates"][0]["body"] == "A bad deploy; rolling back."


def test_a_resolving_update_resolves_the_incident(writer, layout):
    incident = layout["incident"]
    writer.post(f"/api/v1/incidents/{incident.public_id}/updates/", {"status": "resolved", "body": "Fixed."},
                format="json")
    data = writer.get(f"/api/v1/incidents/{incident.public_id}/").json()
    assert data["status"] == "resolved" and data["resolved_at"]
    again = writer.post(f"/api/v1/incidents/{incident.public_id}/updates/",
                        {"status": "investigating", "body": "Hm."}, format="json")
    assert again.status_code == 400 and "status" in again.json()


def test_a_person_opens_an_incident_with_its_first_update(writer, layout):
    component = layout["component"]
    response = writer.post("/api/v1/incidents/", {"title": "DMs slow", "body": "Looking into it.",
                                                  "components": [component.public_id],
                                                  "impact_override": "minor"}, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    incident = Incident.objects.get(public_id=data["id"])
    assert (incident.automatic, incident.title_locked, incident.status) == (False, True, "investigating")
    assert [c.public_id for c in incident.components.all()] == [component.public_id]
    assert [u["body"] for u in data["updates"]] == ["Looking into it."]


def test_editing_an_incident_title_locks_it_and_the_status_moves_only_by_updates(writer, layout):
    incident = layout["incident"]
    response = writer.patch(f"/api/v1/incidents/{incident.public_id}/", {"title": "Posting refused"}, format="json")
    assert response.status_code == 200 and response.json()["title"] == "Posting refused"
    incident.refresh_from_db()
    assert incident.title_locked
    refused = writer.patch(f"/api/v1/incidents/{incident.public_id}/", {"status": "resolved"}, format="json")
    assert refused.status_code == 400 and "status" in refused.json()


# --- validation -------------------------------------------------------------------------------------

def test_validation_errors_name_the_field(writer, layout):
    now = timezone.now()
    window = writer.post("/api/v1/maintenances/", {
        "title": "Backwards", "components": [layout["component"].public_id],
        "scheduled_for": (now + timedelta(hours=2)).isoformat(), "scheduled_until": now.isoformat()}, format="json")
    assert window.status_code == 400 and list(window.json()) == ["scheduled_until"]
    probe = writer.patch("/api/v1/probes/sandbox-post/", {"interval_s": 1}, format="json")
    assert probe.status_code == 400 and list(probe.json()) == ["interval_s"]
    platform = writer.post("/api/v1/platforms/", {"name": "X", "slug": "x", "kind": "mastodn",
                                                  "base_url": "https://x.example"}, format="json")
    assert platform.status_code == 400 and list(platform.json()) == ["kind"]
    component = writer.post("/api/v1/components/", {"name": "C", "group": "nosuchgroup1"}, format="json")
    assert component.status_code == 400 and list(component.json()) == ["group"]
    incident = writer.post("/api/v1/incidents/", {"title": "No body"}, format="json")
    assert incident.status_code == 400 and list(incident.json()) == ["body"]


def test_a_maintenance_that_has_begun_puts_its_components_under_maintenance_at_once(writer, layout):
    now = timezone.now()
    component = layout["component"]
    response = writer.post("/api/v1/maintenances/", {
        "title": "Now", "components": [component.public_id],
        "scheduled_for": (now - timedelta(minutes=1)).isoformat(),
        "scheduled_until": (now + timedelta(hours=1)).isoformat()}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "in_progress"
    component.refresh_from_db()
    assert component.status == "under_maintenance"


def test_a_probe_is_placed_where_the_api_says(writer, layout):
    Location.objects.create(name="sacramento")
    response = writer.patch("/api/v1/probes/sandbox-post/", {"locations": ["sacramento"], "interval_s": 120},
                            format="json")
    assert response.status_code == 200, response.content
    probe = Probe.objects.get(slug="sandbox-post")
    assert [p.location.name for p in probe.placements.all()] == ["sacramento"]
    assert probe.interval_s == 120


# --- runs -------------------------------------------------------------------------------------------

def _runs(layout, count: int, **fields):
    start = timezone.now() - timedelta(hours=1)
    for i in range(count):
        at = start + timedelta(seconds=30 * i)
        Run.objects.create(probe=layout["probe"], location=layout["location"], scheduled_for=at, started_at=at,
                           finished_at=at, latency_ms=100, **{"outcome": "success", **fields})
    return start


def test_runs_filter_by_outcome_failure_class_probe_location_and_time(reader, layout):
    start = _runs(layout, 4, outcome="failure", failure_class="quota_exceeded")
    _runs(layout, 3)
    failures = reader.get("/api/v1/runs/", {"outcome": "failure", "failure_class": "quota_exceeded",
                                            "probe": "sandbox-post", "location": "atlanta"}).json()
    assert failures["count"] == 4
    later = reader.get("/api/v1/runs/", {"failure_class": "quota_exceeded",
                                         "started_after": (start + timedelta(seconds=60)).isoformat()}).json()
    assert later["count"] == 2
    assert reader.get("/api/v1/runs/", {"location": "nowhere"}).json()["count"] == 0
    wrong = reader.get("/api/v1/runs/", {"started_before": "yesterday"})
    assert wrong.status_code == 400 and "started_before" in wrong.json()
    far = reader.get("/api/v1/runs/", {"started_after": "0816-12-12T12:49:43-23:36"})
    assert far.status_code == 400 and "started_after" in far.json()
    offset = reader.get("/api/v1/runs/", {"started_after": (start + timedelta(seconds=60)).astimezone(
        timezone.get_fixed_timezone(-23 * 60)).isoformat(), "failure_class": "quota_exceeded"})
    assert offset.json()["count"] == 2


def test_runs_come_in_pages_with_a_capped_size(reader, layout):
    _runs(layout, 12)
    page = reader.get("/api/v1/runs/", {"page_size": 5}).json()
    assert (page["count"], len(page["results"])) == (13, 5) and page["next"]
    assert len(reader.get("/api/v1/runs/", {"page_size": 5, "page": 3}).json()["results"]) == 3
    assert reader.get("/api/v1/runs/", {"page_size": 10_000}).status_code == 200
    from oncall.management_api.pagination import Pagination
    assert Pagination.max_page_size == 500


def test_a_run_is_read_by_its_key(reader, layout):
    run = layout["run"]
    data = reader.get(f"/api/v1/runs/{run.key}/").json()
    assert (data["probe"], data["location"], data["outcome"]) == ("sandbox-post", "atlanta", "success")


# --- secrets ----------------------------------------------------------------------------------------

def test_an_account_token_is_accepted_on_write_and_never_sent_back(writer, layout):
    secret = "freshly-planted-secret-51ab"
    created = writer.post("/api/v1/platforms/", {
        "name": "Masto", "slug": "masto", "kind": "mastodon", "base_url": "https://masto.example",
        "accounts": [{"role": "prober", "username": "p", "token": secret}]}, format="json")
    assert created.status_code == 201, created.content
    assert Account.objects.get(platform__slug="masto").token == secret
    rotated = writer.patch("/api/v1/platforms/sandbox/", {
        "accounts": [{"role": "prober", "username": "prober2", "token": secret + "-2"}]}, format="json")
    assert rotated.status_code == 200
    assert Account.objects.get(platform__slug="sandbox").token == secret + "-2"
    kept = writer.patch("/api/v1/platforms/sandbox/", {"accounts": [{"role": "prober", "username": "prober3"}]},
                        format="json")
    assert kept.status_code == 200 and Account.objects.get(platform__slug="sandbox").token == secret + "-2"
    bad = writer.post("/api/v1/platforms/", {
        "name": "Bad", "slug": "bad", "kind": "mastodon", "base_url": "https://bad.example",
        "accounts": [{"role": "prober", "username": "p", "token": secret + " with spaces"}]}, format="json")
    assert bad.status_code == 400
    bodies = [created, rotated, kept, bad]
    bodies += [writer.get(path) for path in ("/api/v1/platforms/", "/api/v1/platforms/sandbox/",
                                             "/api/v1/platforms/masto/", "/api/schema/",
                                             "/api/schema/?format=json", "/api/v1/runs/", "/api/v1/probes/")]
    bodies.append(writer.get("/api/v1/platforms/", HTTP_ACCEPT="text/html"))
    for response in bodies:
        assert secret.encode() not in response.content
        assert PLANTED.encode() not in response.content
    assert "token" not in json.dumps(kept.json()["accounts"])


def test_a_new_account_needs_a_token(writer, layout):
    response = writer.patch("/api/v1/platforms/sandbox/", {"accounts": [{"role": "partner", "username": "b"}]},
                            format="json")
    assert response.status_code == 400 and "accounts" in response.json()


# --- schema and docs --------------------------------------------------------------------------------

def test_the_schema_and_the_docs_page_are_served_without_a_token(db):
    schema = APIClient().get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/incidents/{incident_id}/updates/" in paths and "/api/v1/runs/" in paths
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert b"/api/schema/" in APIClient().get("/api/docs/?script=").content  # Swagger UI's start-up script


def test_a_schedule_over_the_platforms_write_limits_is_refused_as_config_check_refuses_it(writer, layout):
    """Issue 16: the management API accepted an interval the budget check refuses: every door
    that changes a schedule runs the same check, with the same words."""
    from detection.budget import schedule_problems

    Platform.objects.filter(slug="sandbox").update(kind="mastodon")
    refused = writer.patch("/api/v1/probes/sandbox-post/", {"interval_s": 30}, format="json")
    assert refused.status_code == 400, refused.json()
    expected = schedule_problems("mastodon", [{"slug": "sandbox-post", "action": "post", "interval": 30,
                                               "locations": ["atlanta"]}])
    assert refused.json()["interval_s"] == [f"platform sandbox: {p}" for p in expected]
    assert Probe.objects.get(slug="sandbox-post").interval_s == 60
    assert writer.patch("/api/v1/probes/sandbox-post/", {"interval_s": 900}, format="json").status_code == 200
    assert writer.patch("/api/v1/probes/sandbox-post/", {"name": "Posting"}, format="json").status_code == 200
