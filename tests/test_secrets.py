"""Plant every kind of secret Vigie holds, make it work for real (probes, failures, incidents,
notifications, API calls), then search every output for them: the database as stored, logs,
public pages, the published copy, feeds, the management API and its schema, the admin, the
on-call dashboard, /metrics and what notification receivers got."""
from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications import tasks as notification_tasks
from notifications.models import Channel, Delivery
from probes.models import Account, Platform, ProbeLocation, Run
from detection.models import Component, Incident
from probes.runner import run_execute
from statuspage.models import apitoken_create
from statuspage.publish import site_publish, site_urls
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe
from tests.notifications.conftest import enqueued, receiver, verify  # noqa: F401 (fixtures)

WEBHOOK_SECRET = "whsec-planted-0d9f8e7c6b5a"
HOOK_QUERY_TOKEN = "hookquery-planted-41c2"
APPRISE_PASSWORD = "apprisepass-planted-93ab"
BAD_TOKEN = "badtoken-planted-6e1f"  # a wrong platform token: refused, quoted nowhere
METRICS_TOKEN = "metrics-planted-token-5b7a0c"


def database_dump() -> str:
    """Every row of every table, as stored (encrypted columns stay ciphertext)."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            parts.append(f"{table}: {cursor.fetchall()!r}")
    return "\n".join(parts)


def run_times(placement: ProbeLocation, count: int) -> list[Run]:
    return [run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())
            for _ in range(count)]


@pytest.mark.django_db(transaction=True)
def test_planted_secrets_appear_in_no_output(platform, locations, sandbox, receiver, enqueued, caplog, settings,  # noqa: F811
                                             tmp_path):
    caplog.set_level(logging.DEBUG)
    settings.VIGIE_METRICS_TOKEN = METRICS_TOKEN
    settings.VIGIE_INCIDENT_CONFIRM_RUNS = 0
    receiver.status, receiver.echo = 500, True  # a hostile receiver echoing what it got, then 200 later
    port = receiver.url.rsplit(":", 1)[1]
    Channel.objects.create(name="Hook", kind=Channel.Kind.WEBHOOK, secret=WEBHOOK_SECRET,
                           url=f"{receiver.url}/hook?key={HOOK_QUERY_TOKEN}")
    Channel.objects.create(name="Chat", kind=Channel.Kind.APPRISE,
                           url=f"json://vigie:{APPRISE_PASSWORD}@127.0.0.1:{port}/chat")
    _, read_token = apitoken_create(name="reader", scope="read")
    _, write_token = apitoken_create(name="writer", scope="write")

    # Real runs: successes, then a read-only outage that opens an incident, then an auth failure
    # on a second platform whose token is wrong.
    post = make_probe(platform, "post", locations, component="Posting", timeout_s=5)
    placements = list(ProbeLocation.objects.filter(probe=post))
    for placement in placements:
        run_times(placement, 2)
    sandbox.fault("read_only", "post")
    for placement in placements:
        run_times(placement, 3)
    assert Incident.objects.filter(automatic=True).exists()
    other = Platform.objects.create(name="Other", slug="other", kind="sandbox", base_url=sandbox.url)
    Account.objects.create(platform=other, role="prober", username="vigie_prober", token=BAD_TOKEN)
    Account.objects.create(platform=other, role="partner", username="vigie_partner", token=BAD_TOKEN + "p")
    wrong = make_probe(other, "read", locations[:1])
    (auth_failure,) = run_times(ProbeLocation.objects.get(probe=wrong), 1)
    assert auth_failure.failure_class == "auth"

    # Notifications go out (the receiver answers 500 and echoes), are retried, then accepted.
    assert enqueued
    for delivery_id in [d for d in enqueued if isinstance(d, int)]:
        notification_tasks.deliver(delivery_id)
    receiver.status = 200
    Delivery.objects.update(next_attempt_at=timezone.now())
    for delivery in Delivery.objects.exclude(status=Delivery.Status.DELIVERED):
        notification_tasks.deliver(delivery.id)
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() >= 2
    # The webhook secret was in use: deliveries arrived signed with it.
    assert any(verify(WEBHOOK_SECRET, r.headers.get("Vigie-Signature", ""), r.body) for r in receiver.requests)

    outputs: dict[str, str] = {}
    public = Client()
    for url in site_urls():
        outputs[f"public {url}"] = public.get(url).content.decode()
    outputs["metrics"] = public.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    assert "vigie_probe_runs_total" in outputs["metrics"]
    published = site_publish(out=tmp_path / "site")
    assert published
    for path in Path(tmp_path / "site").rglob("*"):
        if path.is_file():
            outputs[f"published {path.name}"] = path.read_bytes().decode("utf-8", "replace")

    api = Client(HTTP_AUTHORIZATION=f"Bearer {read_token}")
    for resource in ("component-groups", "components", "incidents", "maintenances", "probes", "platforms", "runs"):
        response = api.get(f"/api/v1/{resource}/?page_size=200")
        assert response.status_code == 200, resource
        outputs[f"api {resource}"] = response.content.decode()
    for platform_id in Platform.objects.values_list("id", flat=True):
        outputs[f"api platform {platform_id}"] = api.get(f"/api/v1/platforms/{platform_id}/").content.decode()
    outputs["api schema"] = api.get("/api/schema/").content.decode()
    # A write through the API with a token in the payload: the answer must not send it back.
    written = Client(HTTP_AUTHORIZATION=f"Bearer {write_token}").patch(
        f"/api/v1/platforms/{other.id}/", {"accounts": [{"role": "prober", "username": "vigie_prober",
                                                          "token": BAD_TOKEN}]}, content_type="application/json")
    outputs["api write answer"] = written.content.decode()

    staff = get_user_model().objects.create_superuser("admin", "admin@example.org", "pw-not-a-secret")
    desk = Client()
    desk.force_login(staff)
    for model, _ in admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        outputs[f"admin {changelist}"] = desk.get(changelist).content.decode()
        for pk in model.objects.values_list("pk", flat=True)[:3]:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk])
            outputs[f"admin {change}"] = desk.get(change).content.decode()
    for path in ("/oncall/", "/oncall/fragments/matrix", "/oncall/fragments/incidents"):
        response = desk.get(path)
        assert response.status_code == 200, path
        outputs[f"oncall {path}"] = response.content.decode()

    for i, got in enumerate(receiver.requests):  # what was sent, beyond the URL it was sent to
        outputs[f"received {i}"] = f"{got.headers!r} {got.body.decode('utf-8', 'replace')}"
    outputs["database"] = database_dump()
    outputs["logs"] = caplog.text
    assert len(outputs) > 40

    planted = {"prober token": PROBER_TOKEN, "partner token": PARTNER_TOKEN, "webhook secret": WEBHOOK_SECRET,
               "webhook URL token": HOOK_QUERY_TOKEN, "Apprise password": APPRISE_PASSWORD,
               "wrong platform token": BAD_TOKEN, "API read token": read_token, "API write token": write_token,
               "metrics token": METRICS_TOKEN, "SECRET_KEY": settings.SECRET_KEY}
    leaks = {(what, where) for what, secret in planted.items() for where, text in outputs.items() if secret in text}
    assert leaks == set()
    # The search could find them: the receiver saw the webhook's query token in the URL it was sent to.
    assert HOOK_QUERY_TOKEN in "".join(r.path for r in receiver.requests)
    assert Component.objects.get(name="Posting").status != "operational"
