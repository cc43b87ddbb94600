"""Failure classification from real recorded Mastodon responses, replayed at the HTTP seam."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses

from platforms.adapters.base import Credentials, RunContext
from platforms.adapters.mastodon import MastodonAdapter, classify
from platforms.errors import ProbeError
from platforms.http import HttpResult, HttpSeam
from probes.models import FailureClass
from tests.cassettes import interactions, recorded, replay

BASE = "https://mastodon.example"
TOKEN = "__MASTODON_PY_TEST_ACCESS_TOKEN"


def adapter(*, partner_id: str = "") -> tuple[MastodonAdapter, list]:
    created: list = []
    http = HttpSeam(user_agent="Vigie/test (probe; location=test)", deadline=time.monotonic() + 10,
                    max_bytes=1_000_000, secrets=[TOKEN])
    ctx = RunContext(http=http, record_artifact=created.append, run_key="00000000-test")
    prober = Credentials("prober", "mastodonpy_test", TOKEN, "117020565966271181")
    partner = Credentials("partner", "admin", TOKEN, partner_id)
    return MastodonAdapter(base_url=BASE, prober=prober, partner=partner, ctx=ctx), created


def result(status: int, headers: dict | None = None, body: object = None) -> HttpResult:
    return HttpResult("POST", "/api/v1/statuses", status, headers or {}, json.dumps(body or {}).encode(), 10)


def test_a_recorded_post_read_back_and_delete_succeeds_with_rate_limit_headers_kept():
    mastodon, created = adapter()
    items = interactions("mastodon/test_status.yaml")  # POST, GET, DELETE of one status
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, items)
        mastodon.execute("post")
        assert [a.kind for a in created] == ["status"]
        rsps.add(responses.GET, f"{BASE}/api/v1/statuses/{created[0].remote_id}", status=404,
                 json={"error": "Record not found"})  # the delete, read back: gone
        mastodon.undo(created[0])
    assert [s.status for s in mastodon.ctx.steps] == [200, 200, 200, 404]
    assert created[0].remote_id == json.loads(items[0]["response"]["body"]["string"])["id"]


def test_a_recorded_reblog_and_unreblog_succeeds():
    mastodon, created = adapter()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, interactions("mastodon/test_status_reblog_unreblog.yaml"))
        mastodon.execute("repost")
        for artifact in reversed(created):
            mastodon.undo(artifact)
    # The first repost makes the partner's kept target post; only the reblog is undone.
    assert [a.kind for a in created] == ["reblog"]
    assert [s.name for s in mastodon.ctx.steps] == ["make repost target", "reblog", "unreblog"]
    assert mastodon.partner.fixture_id == created[0].remote_id == "117020586019094258"


def test_a_recorded_follow_and_unfollow_succeeds():
    mastodon, created = adapter(partner_id="117020457624302809")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, interactions("mastodon/test_account_follow_unfollow.yaml"))
        mastodon.execute("follow")
        mastodon.undo(created[0])
    assert created[0].remote_id == "117020457624302809"


def test_a_recorded_direct_message_is_seen_in_conversations():
    mastodon, created = adapter()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, interactions("mastodon/test_conversations.yaml"))
        mastodon.execute("dm")
    assert created[0].kind == "direct_message"
    assert created[0].remote_id == "117020593780198542"


@pytest.mark.parametrize("index,language", [(0, "ja"), (1, "de")])
def test_a_localized_422_is_classified_by_status_not_by_its_words(index, language):
    item = recorded("mastodon/test_lang_for_errors.yaml", index)
    mastodon, _ = adapter()
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, [item])
        with pytest.raises(ProbeError) as failure:
            mastodon._create_status("create status", "prober", "x", "public", kind="status")
    assert failure.value.failure_class == FailureClass.REJECTED
    assert failure.value.result.status == 422
    assert failure.value.result.error_text() == json.loads(item["response"]["body"]["string"])["error"]


@pytest.mark.parametrize("index", [0, 1])
def test_the_limits_probe_accepts_a_real_localized_refusal_of_an_overlong_post(index):
    mastodon, created = adapter()
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, interactions("mastodon/test_instance.yaml"))
        replay(rsps, BASE, [recorded("mastodon/test_lang_for_errors.yaml", index)])
        mastodon.execute("limits")
    assert created == []
    assert mastodon.ctx.facts["max_characters"] == 500


def test_recorded_rate_limit_headers_of_a_success_are_not_a_failure():
    item = recorded("mastodon/test_status.yaml", 0)
    headers = {k: v[0] for k, v in item["response"]["headers"].items()}
    assert classify(result(200, headers)) is None


def test_too_many_requests_with_a_near_reset_is_rate_limited():
    now = datetime(2026, 8, 1, 13, 53, tzinfo=timezone.utc)
    near = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2026-08-01T13:55:00.898144Z"}
    assert classify(result(429, near, {"error": "Too many requests"}), now=now) == FailureClass.RATE_LIMITED


def test_too_many_requests_until_tomorrow_is_an_exhausted_quota():
    now = datetime(2026, 8, 1, 13, 53, tzinfo=timezone.utc)
    far = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": (now + timedelta(hours=10)).isoformat()}
    # The words do not matter: the same body in Japanese classifies the same way.
    assert classify(result(429, far, {"error": "リクエストが多すぎます"}), now=now) == FailureClass.QUOTA_EXCEEDED


def test_a_429_without_headers_is_rate_limited():
    assert classify(result(429)) == FailureClass.RATE_LIMITED


@pytest.mark.parametrize("status,expected", [
    (401, FailureClass.AUTH), (404, FailureClass.REJECTED), (422, FailureClass.REJECTED),
    (500, FailureClass.SERVER_ERROR), (502, FailureClass.SERVER_ERROR), (302, FailureClass.UNEXPECTED),
])
def test_status_codes_map_to_failure_classes(status, expected):
    assert classify(result(status)) == expected


@pytest.mark.parametrize("write_status,read_status,expected", [
    (503, 200, FailureClass.READ_ONLY), (503, 503, FailureClass.SERVER_ERROR),
    (403, 200, FailureClass.REJECTED), (403, 403, FailureClass.AUTH),
])
def test_a_refused_write_is_explained_by_a_diagnostic_read(write_status, read_status, expected):
    mastodon, _ = adapter()
    verify = recorded("mastodon/test_verify_credentials.yaml", 0)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/api/v1/statuses", json={"error": "nope"}, status=write_status)
        rsps.add("GET", BASE + "/api/v1/accounts/verify_credentials", body=verify["response"]["body"]["string"],
                 status=read_status)
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("post")
    assert failure.value.failure_class == expected


def test_a_success_with_a_body_that_is_not_json_is_unexpected():
    mastodon, _ = adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("GET", BASE + "/api/v1/timelines/home", body="<html>maintenance</html>", status=200)
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("read")
    assert failure.value.failure_class == FailureClass.UNEXPECTED


def test_the_token_never_appears_in_a_transport_error():
    mastodon, _ = adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("GET", BASE + "/api/v1/timelines/home",
                 body=requests.ConnectionError(f"refused while sending Bearer {TOKEN}"))
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("read")
    assert failure.value.failure_class == FailureClass.CONNECT
    assert TOKEN not in failure.value.message


@pytest.mark.parametrize("recipient_status,expected", [(200, None), (404, FailureClass.INVARIANT)])
def test_a_dm_hidden_by_a_newer_message_is_checked_by_id_as_the_recipient(recipient_status, expected):
    mastodon, _ = adapter()
    sent = recorded("mastodon/test_conversations.yaml", 1)
    sent_id = json.loads(sent["response"]["body"]["string"])["id"]
    newer = {"id": "16", "unread": True, "accounts": [], "last_status": {"id": str(int(sent_id) + 1)}}
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, [sent])
        rsps.add("GET", BASE + "/api/v1/conversations", json=[newer])
        rsps.add("GET", BASE + f"/api/v1/statuses/{sent_id}", json={"id": sent_id}, status=recipient_status)
        if expected is None:
            mastodon.execute("dm")
        else:
            with pytest.raises(ProbeError) as failure:
                mastodon.execute("dm")
            assert failure.value.failure_class == expected


@pytest.mark.parametrize("body, content_type, expected", [
    (b"<!doctype html><html><head><title>The page you were looking for doesn't exist (404)</title>"
     b"<style>body{color:red}</style></head><body><h1>404</h1></body></html>", "text/html; charset=utf-8",
     "The page you were looking for doesn't exist (404)"),
    (b"<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>", "text/html",
     "502 Bad Gateway nginx"),
    (b"<html><head><title> </title><script>var token='x'</script></head><body>Busy &amp; down</body></html>", "",
     "Busy & down"),
    (b"plain words", "text/plain", "plain words"),
])
def test_an_html_error_page_is_quoted_by_its_words_never_its_markup(body, content_type, expected):
    result = HttpResult("GET", "/api/v1/statuses/1", 404, {"content-type": content_type}, body, 5)
    assert result.error_text() == expected
