"""Fault injection (kinds, action and location scope, expiry, precedence) and the control endpoint."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from .conftest import PROBER_TOKEN, Client

OVERLONG = "a" * 501


def ua_client(server, location: str | None) -> Client:
    agent = f"Vigie/0.1 (probe; location={location}; +http://vigie.test)" if location else "curl/8.0"
    return Client(server.url, PROBER_TOKEN, user_agent=agent)


# -- kinds --------------------------------------------------------------------------------------------

def test_quota_exceeded_refuses_creates_with_far_reset_but_allows_undo_and_reads(prober, add_fault):
    kept = prober.toot("created before the outage")
    prober.post("/api/v1/accounts/2/follow")
    add_fault("quota_exceeded", "*")
    refused = prober.post("/api/v1/statuses", data={"status": "during the outage"})
    assert refused.status_code == 429
    assert refused.json() == {"error": "You are over the daily limit for sending posts."}
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("2400", "0")
    reset = datetime.strptime(refused.headers["X-RateLimit-Reset"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc)
    now = datetime.now(timezone.utc)
    # A rolling day: far away whatever the time of day (a next-midnight reset would look short at 23:50).
    assert timedelta(hours=23, minutes=59) < reset - now <= timedelta(days=1)
    follow = prober.post("/api/v1/accounts/2/follow")
    assert (follow.status_code, follow.json()) == (429, {"error": "You are unable to follow more people at this time."})
    assert prober.post(f"/api/v1/statuses/{kept['id']}/reblog").status_code == 429
    # Undo operations and reads keep working, as they did in the February 2023 outage.
    assert prober.post("/api/v1/accounts/2/unfollow").status_code == 200
    assert prober.get("/api/v1/timelines/home").status_code == 200
    assert prober.delete(f"/api/v1/statuses/{kept['id']}").status_code == 200


def test_quota_exceeded_scoped_to_post_spares_dm_and_follow(prober, add_fault):
    add_fault("quota_exceeded", "post")
    assert prober.post("/api/v1/statuses", data={"status": "x"}).status_code == 429
    dm = prober.post("/api/v1/statuses", data={"status": "@vigie_partner x", "visibility": "direct"})
    assert dm.status_code == 200
    assert prober.post("/api/v1/accounts/2/follow").status_code == 200


def test_read_only_refuses_creates_and_deletes_of_the_action(prober, add_fault):
    public = prober.toot("public")
    dm = prober.toot("@vigie_partner dm", visibility="direct")
    add_fault("read_only", "post")
    refused = prober.post("/api/v1/statuses", data={"status": "x"})
    assert refused.status_code == 503
    assert refused.json() == {"error": "This server is in read-only mode. Please try again later."}
    assert prober.delete(f"/api/v1/statuses/{public['id']}").status_code == 503
    assert prober.get(f"/api/v1/statuses/{public['id']}").status_code == 200
    # A direct status belongs to the dm action, which is not read-only.
    assert prober.delete(f"/api/v1/statuses/{dm['id']}").status_code == 200


def test_read_only_on_repost_also_blocks_unreblog(prober, partner, add_fault):
    original = partner.toot("boost me")
    prober.post(f"/api/v1/statuses/{original['id']}/reblog")
    add_fault("read_only", "repost")
    assert prober.post(f"/api/v1/statuses/{original['id']}/unreblog").status_code == 503
    assert prober.post("/api/v1/statuses", data={"status": "posting still works"}).status_code == 200


def test_server_error_everywhere_includes_instance_and_credentials(server, prober, add_fault):
    add_fault("server_error", "*")
    anonymous = Client(server.url, None)
    for response in (prober.get("/api/v1/accounts/verify_credentials"), anonymous.get("/api/v2/instance")):
        assert response.status_code == 500
        assert response.json() == {"error": "We're sorry, but something went wrong on our end."}


def test_server_error_on_read_spares_writes(prober, add_fault):
    add_fault("server_error", "read")
    assert prober.get("/api/v1/timelines/home").status_code == 500
    assert prober.get("/api/v1/conversations").status_code == 500
    assert prober.post("/api/v1/statuses", data={"status": "x"}).status_code == 200


def test_slow_delays_the_action_only(prober, add_fault):
    add_fault("slow:400", "read")
    started = time.monotonic()
    assert prober.get("/api/v1/timelines/home").status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert prober.post("/api/v1/statuses", data={"status": "fast"}).status_code == 200
    assert time.monotonic() - started < 0.3


def test_drop_closes_connection_without_response_and_server_survives(prober, partner, add_fault):
    original = partner.toot("boost me")
    add_fault("drop", "repost")
    with pytest.raises(requests.ConnectionError):
        prober.post(f"/api/v1/statuses/{original['id']}/reblog")
    assert prober.get(f"/api/v1/statuses/{original['id']}").json()["reblogs_count"] == 0
    assert prober.post("/api/v1/statuses", data={"status": "still up"}).status_code == 200


def test_accept_overlong_lets_overlong_posts_through_for_the_action(prober, add_fault):
    add_fault("accept_overlong", "post")
    accepted = prober.post("/api/v1/statuses", data={"status": OVERLONG})
    assert accepted.status_code == 200 and len(accepted.json()["content"]) > 501
    refused = prober.post("/api/v1/statuses", data={"status": "@vigie_partner " + OVERLONG, "visibility": "direct"})
    assert refused.status_code == 422


def test_precedence_drop_then_server_error_then_read_only_then_quota(prober, add_fault, control):
    add_fault("quota_exceeded", "post")
    add_fault("read_only", "post")
    assert prober.post("/api/v1/statuses", data={"status": "x"}).status_code == 503
    add_fault("server_error", "post")
    assert prober.post("/api/v1/statuses", data={"status": "x"}).status_code == 500
    add_fault("drop", "*")
    with pytest.raises(requests.ConnectionError):
        prober.post("/api/v1/statuses", data={"status": "x"})
    control.delete("/_sandbox/faults")
    assert prober.post("/api/v1/statuses", data={"status": "x"}).status_code == 200


# -- location scope and expiry --------------------------------------------------------------------

def test_location_scoped_fault_applies_only_to_that_user_agent(server, add_fault):
    add_fault("read_only", "post", location="atlanta")
    assert ua_client(server, "atlanta").post("/api/v1/statuses", data={"status": "x"}).status_code == 503
    assert ua_client(server, "sacramento").post("/api/v1/statuses", data={"status": "x"}).status_code == 200
    assert ua_client(server, None).post("/api/v1/statuses", data={"status": "x"}).status_code == 200


def test_fault_expires_and_leaves_the_list(prober, control, add_fault):
    fault = add_fault("server_error", "post", duration_s=0.4)
    assert fault["expires_at"] is not None
    assert prober.post("/api/v1/statuses", data={"status": "x"}).status_code == 500
    time.sleep(0.5)
    assert prober.post("/api/v1/statuses", data={"status": "x"}).status_code == 200
    assert control.get("/_sandbox/faults").json()["faults"] == []


# -- control endpoint -----------------------------------------------------------------------------

def test_control_endpoint_requires_the_control_token(server, prober):
    assert prober.get("/_sandbox/faults").status_code == 401
    assert Client(server.url, None).post("/_sandbox/faults", json={"kind": "drop", "action": "*"}).status_code == 401


def test_fault_list_and_clear(control, add_fault):
    first = add_fault("slow:3000", "read", location="atlanta")
    second = add_fault("drop", "dm")
    assert first["kind"] == "slow:3000" and first["location"] == "atlanta" and first["expires_at"] is None
    listed = control.get("/_sandbox/faults").json()["faults"]
    assert [f["id"] for f in listed] == [first["id"], second["id"]]
    cleared = control.delete(f"/_sandbox/faults/{first['id']}")
    assert cleared.status_code == 200 and cleared.json()["fault"]["id"] == first["id"]
    assert control.delete(f"/_sandbox/faults/{first['id']}").status_code == 404
    assert control.delete("/_sandbox/faults").json() == {"cleared": 1}
    assert control.get("/_sandbox/faults").json()["faults"] == []


@pytest.mark.parametrize("body, field, hint", [
    ({"action": "post"}, "kind", "quota_exceeded"),
    ({"kind": "quota", "action": "post"}, "kind", "did you mean 'quota_exceeded'"),
    ({"kind": "readonly", "action": "post"}, "kind", "did you mean 'read_only'"),
    ({"kind": "slow", "action": "read"}, "kind", "slow:3000"),
    ({"kind": "slow:0", "action": "read"}, "kind", "positive"),
    ({"kind": "slow:fast", "action": "read"}, "kind", "milliseconds"),
    ({"kind": "drop"}, "action", "post, repost, follow, dm, read, *"),
    ({"kind": "drop", "action": "posts"}, "action", "did you mean 'post'"),
    ({"kind": "quota_exceeded", "action": "read"}, "action", "cannot affect"),
    ({"kind": "drop", "action": "*", "location": "Atlanta!"}, "location", "^[a-z0-9_-]{1,64}$"),
    ({"kind": "drop", "action": "*", "location": "x" * 65}, "location", "location must match"),
    ({"kind": "drop", "action": "*", "duration_s": 0}, "duration_s", "> 0"),
    ({"kind": "drop", "action": "*", "duration_s": -5}, "duration_s", "> 0"),
    ({"kind": "drop", "action": "*", "duration_s": "10m"}, "duration_s", "number of seconds"),
    ({"kind": "drop", "action": "*", "duration": 10}, "duration", "did you mean 'duration_s'"),
    (["drop", "*"], "body", "JSON object"),
])
def test_control_rejects_bad_fault_specs_naming_the_field(control, body, field, hint):
    response = control.post("/_sandbox/faults", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert hint in response.json()["error"]
    assert control.get("/_sandbox/faults").json()["faults"] == []


@pytest.mark.parametrize("raw", [b"{nope", b"\xff\xfe", b"x" * (64 * 1024 + 1)])
def test_control_rejects_unreadable_or_oversized_bodies(control, raw):
    response = control.post("/_sandbox/faults", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_artifacts_count_what_accounts_hold_and_reset_clears(prober, partner, control, add_fault):
    assert control.get("/_sandbox/artifacts").json()["accounts"]["vigie_prober"] == {
        "statuses": 0, "reblogs": 0, "follows": 0, "direct_messages": 0}
    post = prober.toot("left behind")
    prober.toot("@vigie_partner dm", visibility="direct")
    prober.post(f"/api/v1/statuses/{partner.toot('theirs')['id']}/reblog")
    prober.post("/api/v1/accounts/2/follow")
    add_fault("drop", "*", location="atlanta")
    counts = control.get("/_sandbox/artifacts").json()["accounts"]
    assert counts["vigie_prober"] == {"statuses": 1, "reblogs": 1, "follows": 1, "direct_messages": 1}
    assert counts["vigie_partner"] == {"statuses": 1, "reblogs": 0, "follows": 0, "direct_messages": 0}
    assert control.post("/_sandbox/reset").status_code == 200
    counts = control.get("/_sandbox/artifacts").json()["accounts"]
    assert all(value == 0 for c in counts.values() for value in c.values())
    assert control.get("/_sandbox/faults").json()["faults"] == []
    assert prober.get(f"/api/v1/statuses/{post['id']}").status_code == 404
