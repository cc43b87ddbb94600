"""A platform token is bound to the origin it was stored for (issue 17, finding 1): a write-scope API
token that moves base_url elsewhere never gets the platform tokens sent there."""
from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.utils import timezone

from oncall.config import config_apply
from probes.models import Account, Platform, ProbeLocation, Run, url_origin
from probes.runner import run_execute
from statuspage.models import apitoken_create
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe


class Thief(BaseHTTPRequestHandler):
    """A host of the attacker's choosing: records everything it receives."""

    received: list[str] = []

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        Thief.received.append(f"{self.requestline}\n{self.headers}\n{body}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    def log_message(self, *args):
        pass


@pytest.fixture
def thief():
    Thief.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Thief)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run(platform: Platform, locations) -> Run:
    probe = platform.probes.first() or make_probe(platform, "read", locations[:1])
    placement = ProbeLocation.objects.get(probe=probe)
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


def stolen(received: list[str]) -> bool:
    text = "\n".join(received).lower()
    return PROBER_TOKEN.lower() in text or PARTNER_TOKEN.lower() in text


def test_url_origin():
    assert url_origin("https://Example.org/api") == "https://example.org:443"
    assert url_origin("http://example.org:80/") == "http://example.org:80"
    assert url_origin("https://example.org:8443") != url_origin("https://example.org")
    assert url_origin("not a url") == ""


def test_a_token_is_bound_to_the_origin_it_was_stored_for(platform):
    account = Account.objects.get(platform=platform, role="prober")
    assert account.token_origin == url_origin(platform.base_url)
    assert account.token_usable_for(platform.base_url + "/some/path")
    assert not account.token_usable_for("https://evil.example")


def test_patching_base_url_through_the_api_never_sends_the_token_there(platform, locations, thief):
    assert run(platform, locations).outcome == "success"
    _, key = apitoken_create(name="ci", scope="write")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.patch(f"/api/v1/platforms/{platform.slug}/", {"base_url": thief},
                         content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["tokens_dropped"] == ["partner", "prober"]
    assert "never sent to the new origin" in response.json()["detail"]
    result = run(Platform.objects.get(id=platform.id), locations)
    assert result.outcome != "success" and result.failure_class == "auth"
    assert "never sent to another origin" in result.error
    assert not stolen(Thief.received)


def test_new_tokens_sent_with_the_new_base_url_are_used_there(platform, locations, thief):
    _, key = apitoken_create(name="ci", scope="write")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.patch(f"/api/v1/platforms/{platform.slug}/",
                         {"base_url": thief, "accounts": [{"role": "prober", "token": "fresh-token-for-thief"}]},
                         content_type="application/json")
    assert response.json()["tokens_dropped"] == ["partner"]
    prober = Account.objects.get(platform=platform, role="prober")
    assert prober.token_usable_for(thief) and prober.token == "fresh-token-for-thief"
    assert not Account.objects.get(platform=platform, role="partner").token


def test_a_base_url_changed_around_the_model_is_refused_at_run_time(platform, locations, thief):
    Platform.objects.filter(id=platform.id).update(base_url=thief)  # no save(): nothing was dropped
    result = run(Platform.objects.get(id=platform.id), locations)
    assert result.failure_class == "auth" and "was stored for http://127.0.0.1:" in result.error
    assert Thief.received == [] and not stolen(Thief.received)


def test_an_account_saved_after_the_move_keeps_its_old_binding(platform, thief):
    account = Account.objects.get(platform=platform, role="prober")  # loaded before the move, as the admin does
    platform.base_url = thief
    platform.save()
    account.username = "renamed"
    account.save()  # writes back the old token: still bound to the old origin
    assert not Account.objects.get(id=account.id).token_usable_for(thief)


def test_the_kind_changing_drops_the_tokens(platform):
    platform.kind = "mastodon"
    platform.save()
    assert platform.tokens_dropped == ["partner", "prober"]
    assert not any(a.token for a in Account.objects.filter(platform=platform))


def test_config_with_a_new_base_url_and_its_tokens_binds_them_there(platform, thief):
    document = {"platforms": [{"slug": platform.slug, "name": "Sandbox", "kind": "sandbox", "base_url": thief,
                               "accounts": {"prober": {"username": "vigie_prober", "token": PROBER_TOKEN}}}]}
    config_apply(document)
    prober = Account.objects.get(platform=platform, role="prober")
    assert prober.token_usable_for(thief)
    assert not Account.objects.get(platform=platform, role="partner").token_usable_for(thief)


def test_moving_base_url_in_the_admin_warns_and_the_old_token_is_not_usable_there(admin_client, db):
    platform = Platform.objects.create(name="P", slug="p", kind="mastodon", base_url="https://social.example")
    account = Account.objects.create(platform=platform, role="prober", username="vigie", token="very-secret-token-123")
    form = {"name": "P", "slug": "p", "kind": "mastodon", "base_url": "https://evil.example", "enabled": "on", "settle_s": "5",
            "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
            "accounts-TOTAL_FORMS": "1", "accounts-INITIAL_FORMS": "1", "accounts-MIN_NUM_FORMS": "0",
            "accounts-MAX_NUM_FORMS": "1000", "accounts-0-id": str(account.id), "accounts-0-platform": str(platform.id),
            "accounts-0-role": "prober", "accounts-0-username": "vigie-renamed", "accounts-0-token": ""}
    response = admin_client.post(f"/admin/probes/platform/{platform.id}/change/", form, follow=True)
    assert response.status_code == 200
    assert "never sent to another origin" in response.content.decode()
    account.refresh_from_db()
    assert account.username == "vigie-renamed" and not account.token_usable_for("https://evil.example")
