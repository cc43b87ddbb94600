"""The layout move (issue 15) loses no data: a database made at the layout before it (components,
incidents, maintenances … in probes), filled, then migrated forward, reads every row back through
detection's models, with the same ids, links and content types."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("probes", "0006_incident_indexes"), ("notifications", "0001_initial"), ("statuspage", "0001_initial"),
          ("contenttypes", "0002_remove_content_type_name"), ("auth", "0012_alter_user_first_name_max_length")]
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=dt_timezone.utc)
MOVED = ["ComponentGroup", "Component", "ComponentStatusChange", "ComponentHour", "ComponentDay",
         "PlacementStateChange", "Incident", "IncidentComponent", "IncidentUpdate", "Maintenance", "OwnProblem"]


def _fill(old) -> dict:
    """One row of every moved model, linked as the product links them, in the old layout."""
    get = old.get_model
    platform = get("probes", "Platform").objects.create(name="Mastodon", slug="mastodon", kind="sandbox",
                                                        base_url="http://127.0.0.1:1")
    probe = get("probes", "Probe").objects.create(name="Post", slug="post", platform=platform, action="post")
    location = get("probes", "Location").objects.create(name="atlanta")
    placement = get("probes", "ProbeLocation").objects.create(probe=probe, location=location)
    run = get("probes", "Run").objects.create(probe=probe, location=location, scheduled_for=T0, started_at=T0,
                                              finished_at=T0, latency_ms=120, outcome="failure",
                                              failure_class="timeout")
    group = get("probes", "ComponentGroup").objects.create(name="Writes", public_id="writes000001")
    component = get("probes", "Component").objects.create(name="Posting", public_id="posting00001", group=group,
                                                          status="major_outage", status_since=T0)
    component.probes.add(probe)
    get("probes", "ComponentStatusChange").objects.create(component=component, old_status="operational",
                                                          new_status="major_outage", reason="3 failures",
                                                          run=run, changed_at=T0)
    get("probes", "ComponentHour").objects.create(component=component, hour=T0.replace(minute=0), runs=60,
                                                  failures=3, major_s=1800, observed_s=3600)
    get("probes", "ComponentDay").objects.create(component=component, day=T0.date(), runs=1440, failures=3,
                                                 major_s=1800, observed_s=86400)
    get("probes", "PlacementStateChange").objects.create(placement=placement, old_state="up", new_state="failing",
                                                         cause="3 failures", run=run, changed_at=T0)
    incident = get("probes", "Incident").objects.create(public_id="incident0001", platform=platform,
                                                        title="Posting is down", automatic=True,
                                                        started_at=T0, detected_at=T0 + timedelta(minutes=2))
    get("probes", "IncidentComponent").objects.create(incident=incident, component=component,
                                                      worst_status="major_outage", last_status="major_outage")
    get("probes", "IncidentUpdate").objects.create(public_id="update000001", incident=incident,
                                                   status="investigating", body="Posts fail.", automatic=True)
    maintenance = get("probes", "Maintenance").objects.create(public_id="maint0000001", title="Upgrade",
                                                              scheduled_for=T0, scheduled_until=T0 + timedelta(hours=1))
    maintenance.components.add(component)
    get("probes", "OwnProblem").objects.create(kind="stale_location", subject="atlanta", detail="No runs.")
    subscriber = get("notifications", "Subscriber").objects.create(kind="email", email="a@example.org",
                                                                   confirm_hash="c" * 64, unsubscribe_hash="u" * 64)
    subscriber.components.add(component)
    event = get("notifications", "Event").objects.create(key="incident-update:update000001", kind="incident.updated")
    event.components.add(component)
    ContentType = get("contenttypes", "ContentType")
    content_type = ContentType.objects.get_or_create(app_label="probes", model="incident")[0]
    return {"platform": platform.id, "probe": probe.id, "placement": placement.id, "run": run.id, "group": group.id,
            "component": component.id, "incident": incident.id, "maintenance": maintenance.id,
            "subscriber": subscriber.id, "event": event.id, "content_type": content_type.id}


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_layout_move_keeps_every_row():
    from django.contrib.contenttypes.models import ContentType

    from detection import models as dm
    from notifications.models import Event, Subscriber

    executor = MigrationExecutor(connection)
    # detection's own later migrations add columns to the moved tables (0003 a component's name
    # translations): take them off first, since going back to BEFORE leaves detection applied.
    executor.migrate([("detection", "0001_initial")])
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        with pytest.raises(LookupError):
            old.get_model("detection", "Component")  # the old layout indeed
        ids = _fill(old)
        counts = {name: old.get_model("probes", name).objects.count() for name in MOVED}
        assert all(counts.values()), counts

        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()

        assert {name: getattr(dm, name).objects.count() for name in MOVED} == counts
        component = dm.Component.objects.get(id=ids["component"])
        assert (component.public_id, component.status, component.status_since) == ("posting00001", "major_outage", T0)
        assert component.group_id == ids["group"]
        assert list(component.probes.values_list("id", flat=True)) == [ids["probe"]]
        assert component.status_changes.get().run_id == ids["run"]
        assert component.hours.get().major_s == 1800 and component.days.get().runs == 1440
        assert dm.PlacementStateChange.objects.get().placement_id == ids["placement"]
        incident = dm.Incident.objects.get(id=ids["incident"])
        assert (incident.title, incident.platform_id, incident.automatic) == ("Posting is down", ids["platform"], True)
        assert list(incident.components.all()) == [component]
        assert incident.updates.get().body == "Posts fail."
        assert list(dm.Maintenance.objects.get(id=ids["maintenance"]).components.all()) == [component]
        assert list(component.maintenances.all()) == list(dm.Maintenance.objects.all())
        assert dm.OwnProblem.objects.get().subject == "atlanta"
        assert list(Subscriber.objects.get(id=ids["subscriber"]).components.all()) == [component]
        assert list(Event.objects.get(id=ids["event"]).components.all()) == [component]
        # The admin's history and permissions hang on the content type: it moved, it was not remade.
        assert ContentType.objects.get_for_model(dm.Incident).id == ids["content_type"]
        assert not ContentType.objects.filter(app_label="probes", model="incident").exists()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
