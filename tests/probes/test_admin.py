"""People steer incidents through the admin: updates join the timeline and move the status."""
from __future__ import annotations

import re

import pytest
from django.utils import timezone

from probes.models import Account, Platform
from detection.models import Incident, IncidentStatus


@pytest.fixture
def incident(db):
    return Incident.objects.create(title="Posting failing", started_at=timezone.now(), detected_at=timezone.now(),
                                   automatic=True)


def test_a_person_posts_an_update_that_moves_the_incident_and_keeps_the_timeline(admin_client, incident):
    form = {
        "title": incident.title, "impact_override": "major", "postmortem_body": "",
        "updates-TOTAL_FORMS": "1", "updates-INITIAL_FORMS": "0", "updates-MIN_NUM_FORMS": "0",
        "updates-MAX_NUM_FORMS": "1000",
        "updates-0-status": "identified", "updates-0-body": "The platform's write path is refusing quota.",
    }
    response = admin_client.post(f"/admin/detection/incident/{incident.id}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.IDENTIFIED
    assert incident.effective_impact == "major"
    assert not incident.title_locked
    update = incident.updates.get()
    assert update.body.startswith("The platform's") and not update.automatic


def test_a_title_edited_by_a_person_is_kept_from_then_on(admin_client, incident):
    form = {"title": "Posting refused: daily limit", "impact_override": "", "postmortem_body": "",
            "updates-TOTAL_FORMS": "0", "updates-INITIAL_FORMS": "0", "updates-MIN_NUM_FORMS": "0",
            "updates-MAX_NUM_FORMS": "1000"}
    assert admin_client.post(f"/admin/detection/incident/{incident.id}/change/", form).status_code == 302
    incident.refresh_from_db()
    assert incident.title_locked and incident.title == "Posting refused: daily limit"


def test_an_account_token_is_write_only_in_the_admin(admin_client, db):
    platform = Platform.objects.create(name="P", slug="p", kind="mastodon", base_url="https://social.example")
    Account.objects.create(platform=platform, role="prober", username="vigie", token="very-secret-token-123")
    html = admin_client.get(f"/admin/probes/platform/{platform.id}/change/").content.decode()
    assert "very-secret-token-123" not in html


def test_a_maintenance_saved_in_the_admin_shows_at_once(admin_client, db):
    from datetime import timedelta

    from detection.models import Component, Maintenance
    from detection.simulation import demo_layout

    demo_layout(locations=["atlanta"])
    timeline = Component.objects.get(name="Timeline")
    now = timezone.localtime()
    form = {"title": "Cache rebuild", "body": "", "components": [timeline.id],
            "scheduled_for_0": (now - timedelta(minutes=1)).strftime("%Y-%m-%d"),
            "scheduled_for_1": (now - timedelta(minutes=1)).strftime("%H:%M:%S"),
            "scheduled_until_0": (now + timedelta(hours=1)).strftime("%Y-%m-%d"),
            "scheduled_until_1": (now + timedelta(hours=1)).strftime("%H:%M:%S")}
    response = admin_client.post("/admin/detection/maintenance/add/", form)
    errors = re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    assert response.status_code == 302, errors
    assert Maintenance.objects.get().components.get() == timeline
    timeline.refresh_from_db()
    assert timeline.status == "under_maintenance"
