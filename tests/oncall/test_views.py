"""The on-call dashboard over the test client: access, the matrix and its evidence, the incident
controls through the domain functions, maintenance validation and a bounded number of queries."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from detection.models import Component, ComponentStatus, Impact, Incident, IncidentStatus, IncidentUpdate, Maintenance
from probes.models import Location, PlacementState, Probe, ProbeLocation
from detection.simulation import demo_layout, record_run

PLATFORM_ERROR = "You are over the daily limit for sending Tweets."


@pytest.fixture
def demo(db):
    return demo_layout(locations=["atlanta", "sacramento"])


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("oncall", password="correct horse battery", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def placement(action: str, location: str) -> ProbeLocation:
    return ProbeLocation.objects.select_related("probe", "location").get(probe__action=action, location__name=location)


def cell_of(response, action: str, location: str):
    return next(c for row in response.context["rows"] if row.probe.action == action
                for c in row.cells if c.location.name == location)


def fail(p: ProbeLocation, count: int, *, start=None) -> None:
    start = start or timezone.now() - timedelta(seconds=30 * (count + 1))
    for i in range(count):
        record_run(p, start + timedelta(seconds=30 * i), failure_class="quota_exceeded", status_code=429,
                   platform_error=PLATFORM_ERROR, latency_ms=120)


def open_incident() -> Incident:
    """Writes refused from both locations long enough for evaluation to open an incident."""
    for location in ("atlanta", "sacramento"):
        fail(placement("post", location), 4)
    return Incident.objects.get(resolved_at__isnull=True)


# --- access -------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/oncall/", "/oncall/fragments/matrix", "/oncall/fragments/incidents",
                                 "/oncall/oncall.js"])
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/oncall/login/?next=")


def test_a_signed_in_user_who_is_not_staff_is_refused(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader", password="correct horse battery"))
    assert client.get("/oncall/").status_code == 403
    assert client.get("/oncall/fragments/matrix").status_code == 403


def test_a_staff_user_logs_in_through_the_form_and_lands_on_the_dashboard(client, staff, demo):
    page = client.get("/oncall/login/?next=/oncall/")
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content
    response = client.post("/oncall/login/", {"username": "oncall", "password": "correct horse battery",
                                              "next": "/oncall/"})
    assert response.status_code == 302 and response["Location"] == "/oncall/"
    assert client.get("/oncall/").status_code == 200


def test_anonymous_posts_change_nothing(client, demo):
    incident = open_incident()
    response = client.post(f"/oncall/incidents/{incident.public_id}/update", {"status": "identified", "body": "x"})
    assert response.status_code == 302 and "/oncall/login/" in response["Location"]
    assert not IncidentUpdate.objects.filter(body="x").exists()


def test_the_forms_are_csrf_protected(staff, demo):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    incident = open_incident()
    response = client.post(f"/oncall/incidents/{incident.public_id}/update", {"status": "identified", "body": "x"})
    assert response.status_code == 403
    assert not IncidentUpdate.objects.filter(body="x").exists()


def test_the_script_is_served_without_a_static_file_server(staff_client, db):
    response = staff_client.get("/oncall/oncall.js")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert b"data-fragment" in response.content


# --- the matrix ---------------------------------------------------------------------------------

def test_the_matrix_shows_a_failing_cell_with_its_evidence(staff_client, demo):
    record_run(placement("post", "atlanta"), timezone.now() - timedelta(minutes=3))
    fail(placement("post", "atlanta"), 2)
    response = staff_client.get("/oncall/fragments/matrix")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-probe="sandbox-post" data-location="atlanta" data-state="failing"' in html
    cell = cell_of(response, "post", "atlanta")
    assert cell.placement.state == PlacementState.FAILING and len(cell.runs) == 3
    assert "quota_exceeded" in html and "429" in html and "over the daily limit for sending Tweets" in html
    assert '<span aria-hidden="true">✕</span> Failing' in html  # in words and a shape, not colour alone
    assert "success, 40 ms" in html and "failure (quota_exceeded), 120 ms" in html
    assert [(probe.slug, c.location.name) for probe, c in response.context["failures"]] == [("sandbox-post", "atlanta")]


def test_a_cell_shows_the_rate_limit_headers_of_its_latest_failure(staff_client, demo):
    p = placement("dm", "sacramento")
    run = record_run(p, timezone.now() - timedelta(seconds=10), failure_class="rate_limited", status_code=429,
                     platform_error="Too many requests")
    run.evidence["rate_limit"] = {"x-ratelimit-limit": "300", "x-ratelimit-remaining": "0"}
    run.save(update_fields=["evidence"])
    html = staff_client.get("/oncall/").content.decode()
    assert "x-ratelimit-remaining: 0" in html and "Too many requests" in html


def test_a_cell_shows_at_most_ten_runs(staff_client, demo):
    p = placement("read", "atlanta")
    start = timezone.now() - timedelta(minutes=10)
    for i in range(14):
        record_run(p, start + timedelta(seconds=30 * i))
    cell = cell_of(staff_client.get("/oncall/fragments/matrix"), "read", "atlanta")
    assert len(cell.runs) == 10
    assert cell.runs[-1].started_at == start + timedelta(seconds=30 * 13)


def test_the_dashboard_query_count_does_not_grow_with_probes_or_runs(staff_client, demo):
    fail(placement("post", "atlanta"), 2)
    open_incident()

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get("/oncall/").status_code == 200
            assert staff_client.get("/oncall/fragments/matrix").status_code == 200
            assert staff_client.get("/oncall/fragments/incidents").status_code == 200
        return len(captured)

    before = queries()
    extra = Location.objects.create(name="paris")
    start = timezone.now() - timedelta(minutes=20)
    for n in range(6):
        probe = Probe.objects.create(name=f"Extra {n}", slug=f"extra-{n}", platform=demo, action="read",
                                     interval_s=30)
        Component.objects.create(name=f"Extra {n}").probes.add(probe)
        for location in Location.objects.all():
            p = ProbeLocation.objects.create(probe=probe, location=location)
            for i in range(12):
                record_run(p, start + timedelta(seconds=30 * i),
                           failure_class="server_error" if location == extra else "")
    assert queries() == before


# --- incidents ----------------------------------------------------------------------------------

def test_an_update_posted_on_the_dashboard_appears_on_the_public_incident_page(staff_client, client, demo,
                                                                                monkeypatch):
    from detection import incidents
    from oncall import views

    incident = open_incident()
    calls = []
    real = incidents.incident_set_status
    monkeypatch.setattr(views, "incident_set_status", lambda **kw: calls.append(kw) or real(**kw))
    body = "We see the daily-limit refusals and are talking to the platform."
    response = staff_client.post(f"/oncall/incidents/{incident.public_id}/update",
                                 {"status": "identified", "body": body})
    assert response.status_code == 302 and response["Location"] == "/oncall/"
    assert [c["status"] for c in calls] == ["identified"] and calls[0]["incident"].id == incident.id
    assert Incident.objects.get(id=incident.id).status == IncidentStatus.IDENTIFIED
    client.logout()
    public = client.get(f"/incidents/{incident.public_id}")
    assert public.status_code == 200 and body in public.content.decode()


def test_an_update_without_a_message_is_refused_with_the_field_named(staff_client, demo):
    incident = open_incident()
    response = staff_client.post(f"/oncall/incidents/{incident.public_id}/update", {"status": "identified",
                                                                                    "body": ""}, follow=True)
    assert "Message: This field is required." in response.content.decode()
    assert Incident.objects.get(id=incident.id).status == IncidentStatus.INVESTIGATING


def test_the_impact_can_be_overridden_and_handed_back_to_the_evidence(staff_client, demo):
    incident = open_incident()
    staff_client.post(f"/oncall/incidents/{incident.public_id}/impact", {"impact": "minor"})
    incident.refresh_from_db()
    assert incident.impact_override == Impact.MINOR and incident.effective_impact == Impact.MINOR
    staff_client.post(f"/oncall/incidents/{incident.public_id}/impact", {"impact": ""})
    incident.refresh_from_db()
    assert incident.impact_override == "" and incident.effective_impact == incident.impact


def test_resolving_and_writing_the_postmortem_show_on_the_public_page(staff_client, client, demo):
    incident = open_incident()
    staff_client.post(f"/oncall/incidents/{incident.public_id}/resolve", {"body": "Fixed by the platform."})
    incident.refresh_from_db()
    assert incident.resolved_at is not None and incident.status == IncidentStatus.RESOLVED
    dashboard = staff_client.get("/oncall/").content.decode()
    assert "Write the postmortem" in dashboard
    staff_client.post(f"/oncall/incidents/{incident.public_id}/postmortem", {"body": "The quota was lowered."})
    incident.refresh_from_db()
    assert incident.postmortem_published_at is not None and incident.status == IncidentStatus.POSTMORTEM
    page = client.get(f"/incidents/{incident.public_id}").content.decode()
    assert "The quota was lowered." in page and "Fixed by the platform." in page


# --- maintenance --------------------------------------------------------------------------------

def _maintenance(components, start, end) -> dict:
    return {"title": "Database upgrade", "body": "Posting may be refused.",
            "components": [c.id for c in components],
            "scheduled_for": start.strftime("%Y-%m-%dT%H:%M"), "scheduled_until": end.strftime("%Y-%m-%dT%H:%M")}


def test_a_maintenance_that_ends_before_it_starts_is_refused_naming_the_field(staff_client, demo):
    now = timezone.now()
    backwards = _maintenance(Component.objects.all()[:1], now + timedelta(hours=2), now + timedelta(hours=1))
    response = staff_client.post("/oncall/maintenances", backwards)
    assert response.status_code == 400
    assert list(response.context["maintenance_form"].errors) == ["scheduled_until"]
    assert "Until: “Until” must be later than “From”." in response.content.decode()
    assert not Maintenance.objects.exists()


def test_a_maintenance_that_has_begun_puts_its_components_under_maintenance_at_once(staff_client, demo):
    posting = Component.objects.get(name="Posting")
    now = timezone.now()
    response = staff_client.post("/oncall/maintenances", _maintenance([posting], now - timedelta(minutes=5),
                                                                      now + timedelta(hours=1)))
    assert response.status_code == 302
    assert list(Maintenance.objects.get().components.all()) == [posting]
    posting.refresh_from_db()
    assert posting.status == ComponentStatus.MAINTENANCE


# --- figures ------------------------------------------------------------------------------------

def test_each_component_has_mttd_mttr_and_uptime_over_7_30_and_90_days(staff_client, demo):
    from detection.models import IncidentComponent

    Component.objects.update(status="operational")  # measured since created: uptime counts only measured time
    posting = Component.objects.get(name="Posting")
    now = timezone.now()
    for days_ago, detect_s, resolve_s in ((3, 60, 600), (20, 120, 1800)):
        started = now - timedelta(days=days_ago)
        incident = Incident.objects.create(title="x", status="resolved", started_at=started,
                                           detected_at=started + timedelta(seconds=detect_s),
                                           resolved_at=started + timedelta(seconds=resolve_s))
        IncidentComponent.objects.create(incident=incident, component=posting, worst_status="major_outage",
                                         last_status="operational")
    stats = {row["component"].name: row["periods"] for row in staff_client.get("/oncall/").context["stats"]}
    week, month, quarter = stats["Posting"]
    assert (week["days"], week["incidents"], week["mttd"], week["mttr"]) == (7, 1, "1 min", "10 min")
    assert (month["incidents"], month["mttd"], month["mttr"]) == (2, "1 min 30 s", "20 min")
    assert quarter["incidents"] == 2 and week["uptime"] is not None
    assert stats["Timeline"][0]["mttd"] == "—"
