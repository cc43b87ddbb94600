"""The sandbox's Mastodon API subset: auth, statuses, DMs, reblogs, follows, timelines, rate limits."""
from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta, timezone

import pytest

from sandbox.config import SandboxConfig

from .conftest import CONTROL_TOKEN, PARTNER_TOKEN, PROBER_TOKEN, Client, start

ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse_reset(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


# -- auth -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "wrong-token", CONTROL_TOKEN])
def test_missing_or_wrong_token_is_401_with_doorkeeper_header(server, token):
    response = Client(server.url, token).get("/api/v1/accounts/verify_credentials")
    assert response.status_code == 401
    assert response.json() == {"error": "The access token is invalid"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Doorkeeper", error="invalid_token"'
    assert "X-RateLimit-Limit" not in response.headers


def test_verify_credentials_returns_credential_account_per_token(prober, partner):
    me = prober.get("/api/v1/accounts/verify_credentials")
    assert me.status_code == 200
    assert me.headers["Content-Type"] == "application/json; charset=utf-8"
    body = me.json()
    assert (body["id"], body["username"], body["acct"]) == ("1", "vigie_prober", "vigie_prober")
    assert body["source"]["privacy"] == "public"
    assert ISO_MS.match(body["created_at"])
    assert partner.get("/api/v1/accounts/verify_credentials").json()["username"] == "vigie_partner"


def test_instance_needs_no_auth_and_reports_limits(server):
    response = Client(server.url, None).get("/api/v2/instance/")  # Mastodon.py adds the trailing slash
    assert response.status_code == 200
    body = response.json()
    assert body["domain"] == server.url.split("://")[1]
    assert body["version"].startswith("4.")
    assert body["configuration"]["statuses"] == {
        "max_characters": 500, "max_media_attachments": 4, "characters_reserved_per_url": 23}
    assert body["configuration"]["accounts"]["max_featured_tags"] == 10


def test_max_characters_is_configurable(config):
    srv = start(SandboxConfig(prober_token=PROBER_TOKEN, partner_token=PARTNER_TOKEN,
                              control_token=CONTROL_TOKEN, max_characters=20))
    try:
        client = Client(srv.url, PROBER_TOKEN)
        assert client.get("/api/v2/instance").json()["configuration"]["statuses"]["max_characters"] == 20
        refused = client.post("/api/v1/statuses", data={"status": "x" * 21})
        assert refused.status_code == 422
        assert refused.json() == {"error": "Validation failed: Text character limit of 20 exceeded"}
    finally:
        srv.stop()


# -- statuses ---------------------------------------------------------------------------------------

def test_post_get_delete_roundtrip(prober, partner):
    created = prober.toot("Hello from Vigie & co")
    assert created["visibility"] == "public"
    assert created["content"] == "<p>Hello from Vigie &amp; co</p>"
    assert created["account"]["username"] == "vigie_prober"
    assert ISO_MS.match(created["created_at"])
    read = partner.get(f"/api/v1/statuses/{created['id']}")
    assert read.status_code == 200 and read.json()["id"] == created["id"]
    # Only the author may delete; others get 404 like any unknown id.
    assert partner.delete(f"/api/v1/statuses/{created['id']}").status_code == 404
    deleted = prober.delete(f"/api/v1/statuses/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["text"] == "Hello from Vigie & co" and "content" not in deleted.json()
    gone = prober.get(f"/api/v1/statuses/{created['id']}")
    assert (gone.status_code, gone.json()) == (404, {"error": "Record not found"})


def test_ids_are_increasing_numeric_strings(prober):
    ids = [prober.toot(f"n{i}")["id"] for i in range(3)]
    assert all(i.isdigit() for i in ids)
    assert [int(i) for i in ids] == sorted(int(i) for i in ids) and len(set(ids)) == 3


def test_json_body_is_accepted_like_form(prober):
    response = prober.post("/api/v1/statuses", json={"status": "json body", "visibility": "unlisted"})
    assert response.status_code == 200
    assert response.json()["visibility"] == "unlisted"


def test_idempotency_key_returns_the_same_status_per_account(prober, partner):
    headers = {"Idempotency-Key": "run-42-post"}
    first = prober.post("/api/v1/statuses", data={"status": "once"}, headers=headers).json()
    again = prober.post("/api/v1/statuses", data={"status": "once"}, headers=headers).json()
    assert again["id"] == first["id"]
    other_account = partner.post("/api/v1/statuses", data={"status": "once"}, headers=headers).json()
    assert other_account["id"] != first["id"]
    other_key = prober.post("/api/v1/statuses", data={"status": "once"}, headers={"Idempotency-Key": "x"}).json()
    assert other_key["id"] != first["id"]


@pytest.mark.parametrize("text, error", [
    ("", "Validation failed: Text can't be blank"),
    ("   \n ", "Validation failed: Text can't be blank"),
    ("a" * 501, "Validation failed: Text character limit of 500 exceeded"),
])
def test_blank_and_overlong_posts_are_422(prober, text, error):
    response = prober.post("/api/v1/statuses", data={"status": text})
    assert response.status_code == 422
    assert response.json() == {"error": error}
    assert response.headers["X-RateLimit-Limit"]  # errors still carry the rate-limit headers


def test_limit_counts_characters_not_bytes_and_urls_as_23(prober):
    assert prober.post("/api/v1/statuses", data={"status": "é" * 500}).status_code == 200
    long_url = "https://example.com/" + "p" * 300
    assert prober.post("/api/v1/statuses", data={"status": long_url + " " + "a" * 476}).status_code == 200
    assert prober.post("/api/v1/statuses", data={"status": long_url + " " + "a" * 477}).status_code == 422


def test_invalid_visibility_is_422(prober):
    response = prober.post("/api/v1/statuses", data={"status": "hi", "visibility": "friends"})
    assert response.status_code == 422
    assert "Visibility" in response.json()["error"]


def test_direct_status_is_visible_only_to_author_and_mentioned(server, prober, partner):
    dm = prober.toot("@vigie_partner psst", visibility="direct")
    assert dm["visibility"] == "direct"
    assert dm["mentions"] == [{"id": "2", "username": "vigie_partner", "acct": "vigie_partner",
                               "url": f"{server.url}/@vigie_partner"}]
    assert 'class="u-url mention"' in dm["content"]
    assert partner.get(f"/api/v1/statuses/{dm['id']}").status_code == 200
    # Without the mention the partner cannot see it.
    private = prober.toot("note to self", visibility="direct")
    assert partner.get(f"/api/v1/statuses/{private['id']}").status_code == 404
    assert prober.get(f"/api/v1/statuses/{private['id']}").status_code == 200


def test_conversations_list_direct_statuses_for_both_sides(prober, partner):
    prober.toot("public, not a conversation")
    dm = prober.toot("@vigie_partner psst", visibility="direct")
    theirs = partner.get("/api/v1/conversations").json()
    assert len(theirs) == 1
    conversation = theirs[0]
    assert conversation["last_status"]["id"] == dm["id"]
    assert [a["username"] for a in conversation["accounts"]] == ["vigie_prober"]
    assert conversation["unread"] is True
    mine = prober.get("/api/v1/conversations").json()
    assert [a["username"] for a in mine[0]["accounts"]] == ["vigie_partner"]
    assert mine[0]["unread"] is False and mine[0]["id"] == conversation["id"]
    read = partner.post(f"/api/v1/conversations/{conversation['id']}/read").json()
    assert read["unread"] is False
    prober.delete(f"/api/v1/statuses/{dm['id']}")
    assert partner.get("/api/v1/conversations").json() == []


# -- reblogs ----------------------------------------------------------------------------------------

def test_reblog_creates_new_status_wrapping_original_and_unreblog_removes_it(prober, partner):
    original = partner.toot("boost me")
    reblog = prober.post(f"/api/v1/statuses/{original['id']}/reblog", data={"visibility": "unlisted"})
    assert reblog.status_code == 200
    outer = reblog.json()
    assert outer["id"] != original["id"] and int(outer["id"]) > int(original["id"])
    assert outer["reblog"]["id"] == original["id"]
    assert outer["reblogged"] is True and outer["reblog"]["reblogged"] is True
    assert outer["reblog"]["reblogs_count"] == 1
    assert outer["account"]["username"] == "vigie_prober" and outer["content"] == ""
    assert outer["visibility"] == "unlisted"
    again = prober.post(f"/api/v1/statuses/{original['id']}/reblog").json()
    assert again["id"] == outer["id"]  # reblogging twice returns the existing reblog
    assert prober.get(f"/api/v1/statuses/{outer['id']}").json()["reblog"]["id"] == original["id"]
    undone = prober.post(f"/api/v1/statuses/{original['id']}/unreblog")
    assert undone.status_code == 200
    assert undone.json()["id"] == original["id"]
    assert undone.json()["reblogged"] is False and undone.json()["reblogs_count"] == 0
    assert prober.get(f"/api/v1/statuses/{outer['id']}").status_code == 404


def test_reblog_unknown_or_direct(prober, partner):
    assert prober.post("/api/v1/statuses/123456789/reblog").status_code == 404
    assert prober.post("/api/v1/statuses/not-an-id/unreblog").status_code == 404
    dm = partner.toot("@vigie_prober hi", visibility="direct")
    refused = prober.post(f"/api/v1/statuses/{dm['id']}/reblog")
    assert refused.status_code == 422
    assert refused.json() == {"error": "Validation failed: Reblog of status is not permitted"}


def test_deleting_original_removes_its_reblogs(prober, partner):
    original = partner.toot("short-lived")
    reblog = prober.post(f"/api/v1/statuses/{original['id']}/reblog").json()
    partner.delete(f"/api/v1/statuses/{original['id']}")
    assert prober.get(f"/api/v1/statuses/{reblog['id']}").status_code == 404


# -- follows and timeline ---------------------------------------------------------------------------

RELATIONSHIP_KEYS = {"id", "following", "showing_reblogs", "notifying", "languages", "followed_by", "blocking",
                     "blocked_by", "muting", "muting_notifications", "requested", "requested_by",
                     "domain_blocking", "endorsed", "note"}


def test_follow_and_unfollow_return_relationships(prober, partner):
    followed = prober.post("/api/v1/accounts/2/follow")
    assert followed.status_code == 200
    body = followed.json()
    assert RELATIONSHIP_KEYS <= set(body)
    assert (body["id"], body["following"], body["showing_reblogs"], body["followed_by"]) == ("2", True, True, False)
    seen_from_partner = partner.get("/api/v1/accounts/relationships", params={"id[]": "1"}).json()
    assert seen_from_partner[0]["followed_by"] is True
    assert partner.get("/api/v1/accounts/2").json()["followers_count"] == 1
    unfollowed = prober.post("/api/v1/accounts/2/unfollow").json()
    assert (unfollowed["following"], unfollowed["showing_reblogs"]) == (False, False)


def test_follow_unknown_or_self(prober):
    assert prober.post("/api/v1/accounts/999/follow").json() == {"error": "Record not found"}
    myself = prober.post("/api/v1/accounts/1/follow")
    assert (myself.status_code, myself.json()) == (403, {"error": "This action is not allowed"})


def test_home_timeline_has_self_and_followed_newest_first(prober, partner):
    before_follow = partner.toot("partner before follow")
    mine = prober.toot("mine")
    assert [s["id"] for s in prober.get("/api/v1/timelines/home").json()] == [mine["id"]]
    prober.post("/api/v1/accounts/2/follow")
    theirs = partner.toot("partner after follow")
    boost = partner.post(f"/api/v1/statuses/{mine['id']}/reblog").json()
    timeline = prober.get("/api/v1/timelines/home").json()
    assert [s["id"] for s in timeline] == [boost["id"], theirs["id"], mine["id"], before_follow["id"]]
    limited = prober.get("/api/v1/timelines/home", params={"limit": 2})
    assert [s["id"] for s in limited.json()] == [boost["id"], theirs["id"]]
    assert 'rel="next"' in limited.headers["Link"]
    older = prober.get("/api/v1/timelines/home", params={"limit": 2, "max_id": theirs["id"]}).json()
    assert [s["id"] for s in older] == [mine["id"], before_follow["id"]]


def test_home_timeline_limit_is_capped_at_40(prober):
    for i in range(45):
        prober.toot(f"status {i}")
    assert len(prober.get("/api/v1/timelines/home").json()) == 20
    assert len(prober.get("/api/v1/timelines/home", params={"limit": 100}).json()) == 40
    assert len(prober.get("/api/v1/timelines/home", params={"limit": "junk"}).json()) == 20


# -- robustness -------------------------------------------------------------------------------------

def test_unknown_route_is_404_json(prober):
    response = prober.get("/api/v1/nothing/here")
    assert (response.status_code, response.json()) == (404, {"error": "Record not found"})


def test_malformed_json_body_is_400_json(prober):
    response = prober.post("/api/v1/statuses", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()


def test_body_over_one_megabyte_is_413(prober):
    response = prober.post("/api/v1/statuses", data={"status": "x" * (1024 * 1024 + 10)})
    assert response.status_code == 413
    assert "error" in response.json()


def test_garbage_request_line_gets_json_error_and_server_keeps_serving(server, prober):
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"BLAH /\x00\xff nonsense\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):  # the server closes after an error
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") or reply.startswith(b"HTTP/1.1 501")
    assert b'{"error":' in reply
    assert prober.get("/api/v1/accounts/verify_credentials").status_code == 200


# -- rate limits ------------------------------------------------------------------------------------

def test_headers_report_the_family_closest_to_exceeding(prober):
    created = prober.post("/api/v1/statuses", data={"status": "hi"})
    assert created.headers["X-RateLimit-Limit"] == "1000000"  # generous preset by default
    assert ISO_US.match(created.headers["X-RateLimit-Reset"])


def test_mastodon_preset_enforces_statuses_family():
    srv = start(SandboxConfig(prober_token=PROBER_TOKEN, partner_token=PARTNER_TOKEN, control_token=CONTROL_TOKEN,
                              rate_limits="mastodon", rate_limit_overrides={"statuses": 2}))
    try:
        client = Client(srv.url, PROBER_TOKEN)
        read = client.get("/api/v1/accounts/verify_credentials")
        assert (read.headers["X-RateLimit-Limit"], read.headers["X-RateLimit-Remaining"]) == ("300", "299")
        reset = parse_reset(read.headers["X-RateLimit-Reset"])
        assert timedelta(0) < reset - datetime.now(timezone.utc) <= timedelta(minutes=5)
        first = client.post("/api/v1/statuses", data={"status": "one"})
        assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
        assert client.post("/api/v1/statuses", data={"status": "two"}).headers["X-RateLimit-Remaining"] == "0"
        third = client.post("/api/v1/statuses", data={"status": "three"})
        assert third.status_code == 429
        assert third.json() == {"error": "Too many requests"}
        assert (third.headers["X-RateLimit-Limit"], third.headers["X-RateLimit-Remaining"]) == ("2", "0")
        # Other families are unaffected; the partner has its own counters.
        assert client.get("/api/v1/timelines/home").status_code == 200
        assert Client(srv.url, PARTNER_TOKEN).post("/api/v1/statuses", data={"status": "p"}).status_code == 200
        assert len(client.get("/api/v1/timelines/home").json()) == 2  # the refused post was not created
    finally:
        srv.stop()


def test_mastodon_preset_delete_and_unreblog_share_a_bucket():
    srv = start(SandboxConfig(prober_token=PROBER_TOKEN, partner_token=PARTNER_TOKEN, control_token=CONTROL_TOKEN,
                              rate_limits="mastodon", rate_limit_overrides={"deletes": 2}))
    try:
        client = Client(srv.url, PROBER_TOKEN)
        a, b = client.toot("a"), client.toot("b")
        client.post(f"/api/v1/statuses/{a['id']}/reblog")
        unreblog = client.post(f"/api/v1/statuses/{a['id']}/unreblog")
        assert (unreblog.headers["X-RateLimit-Limit"], unreblog.headers["X-RateLimit-Remaining"]) == ("2", "1")
        assert client.delete(f"/api/v1/statuses/{a['id']}").status_code == 200
        refused = client.delete(f"/api/v1/statuses/{b['id']}")
        assert refused.status_code == 429 and refused.headers["X-RateLimit-Remaining"] == "0"
        reset = parse_reset(refused.headers["X-RateLimit-Reset"])
        assert timedelta(0) < reset - datetime.now(timezone.utc) <= timedelta(minutes=30)
    finally:
        srv.stop()
