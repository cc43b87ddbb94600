"""The X API v2 adapter, replaying real recorded X exchanges (tweepy's cassettes) at the HTTP seam.

The recordings (tests/fixtures/recorded/x, 2021-2022, api.twitter.com, gzip bodies kept as sent)
are all successes: every failure below is built from X's documented error formats (problem+json
and the v1.1 `errors[].code` table quoted in platforms/adapters/x.py), since no refusal was recorded.
"""
from __future__ import annotations

import gzip
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import responses
from django.utils import timezone as dj_timezone

from platforms.adapters import REGISTRY, adapter_class
from platforms.adapters.base import CreatedArtifact, Credentials, RunContext
from platforms.adapters.x import XAdapter, classify
from detection.budget import SELF_INFLICTED_SHARE, schedule_problems
from oncall.config import ConfigError, config_load
from platforms.errors import ProbeError
from platforms.http import HttpResult, HttpSeam
from probes.models import Account, Artifact, FailureClass, Location, Platform, ProbeLocation, Run
from probes.runner import cleanup_pending, run_execute
from tests.cassettes import interactions
from tests.conftest import make_probe

BASE = "https://api.x.com"  # the recordings were made at api.twitter.com: replayed by path
PROBER_TOKEN = "x-oauth2-user-token-prober-5d1e9a"
PARTNER_TOKEN = "x-oauth2-user-token-partner-c07b44"
PROBER_ID = "1072250532645998596"  # TweepyDev, the account that made the recordings
FOLLOW_TARGET = "17874544"
REPOST_TARGET = "1415348607813832708"
DM_PARTNER = "750362064426721281"
RECORDED_POST = "1456012973835788293"


# --- helpers ----------------------------------------------------------------------------------
def replay(rsps: responses.RequestsMock, items: list[dict]) -> None:
    """Register recorded responses under BASE, matched on method and path, with their headers and
    gzip bodies as X sent them (Content-Encoding kept: the seam decompresses, as in production)."""
    for item in items:
        request, response = item["request"], item["response"]
        body = response["body"]["string"]
        dropped = {"content-length", "transfer-encoding", "set-cookie"}
        if isinstance(body, str):  # recorded already decoded (the async client's cassette)
            dropped.add("content-encoding")
        headers = [(k, v) for k, values in response["headers"].items() for v in values if k.lower() not in dropped]
        rsps.add(request["method"], BASE + urlsplit(request["uri"]).path, body=body,
                 status=response["status"]["code"], headers=headers)


def recorded(name: str, index: int) -> dict:
    return interactions(f"x/{name}.yaml")[index]


def recorded_json(name: str, index: int, part: str = "response") -> dict:
    item = recorded(name, index)
    raw = item[part]["body"]["string"] if part == "response" else item[part]["body"]
    if isinstance(raw, bytes):
        raw = gzip.decompress(raw)
    return json.loads(raw)


def recorded_headers(name: str, index: int) -> dict[str, str]:
    return {k: v[0] for k, v in recorded(name, index)["response"]["headers"].items()}


def legacy(code: int, message: str) -> dict:
    """X's v1.1 error body (documented: `{"errors":[{"code":88,"message":"Rate limit exceeded"}]}`)."""
    return {"errors": [{"code": code, "message": message}]}


def problem(kind: str, status: int, *, host: str = "https://api.x.com", detail: str = "refused") -> dict:
    """X's problem+json body (x-api/fundamentals/response-codes-and-errors.mdx)."""
    return {"title": kind.replace("-", " ").title(), "detail": detail, "type": f"{host}/2/problems/{kind}",
            "status": status}


def make_adapter(*, prober_id: str = PROBER_ID, partner_id: str = "", fixture_id: str = "",
                 run_key: str = "5f0c1d2e-test") -> tuple[XAdapter, list[CreatedArtifact]]:
    created: list[CreatedArtifact] = []
    http = HttpSeam(user_agent="Vigie/test (probe; location=test)", deadline=time.monotonic() + 10,
                    max_bytes=1_000_000, secrets=[PROBER_TOKEN, PARTNER_TOKEN])
    ctx = RunContext(http=http, record_artifact=created.append, run_key=run_key)
    prober = Credentials("prober", "vigie_prober", PROBER_TOKEN, prober_id)
    partner = Credentials("partner", "vigie_partner", PARTNER_TOKEN, partner_id, fixture_id)
    return XAdapter(base_url=BASE, prober=prober, partner=partner, ctx=ctx), created


def sent_json(call) -> dict:
    return json.loads(call.request.body)


def bearer(call) -> str:
    return call.request.headers["Authorization"]


def me_ok(rsps: responses.RequestsMock, status: int = 200) -> None:
    """The diagnostic read, answered with the recorded /2/users/me (or refused)."""
    item = recorded("test_client_get_me", 0)
    if status == 200:
        replay(rsps, [item])
    else:
        rsps.add("GET", BASE + "/2/users/me", json=problem("client-forbidden", status), status=status)


# --- the registry and configuration ---------------------------------------------------------
def test_kind_x_is_registered_and_resolves_to_the_adapter():
    assert REGISTRY["x"] == "platforms.adapters.x.XAdapter"
    assert adapter_class("x") is XAdapter


def _config(interval: int, action: str = "dm") -> str:
    return f"""
locations: [{{name: a}}, {{name: b}}]
platforms:
  - {{slug: x, name: X, kind: x, base_url: "https://api.x.com",
     accounts: {{prober: {{username: vigie, token: "${{XT}}"}}, partner: {{username: friend, token: "${{XT}}"}}}}}}
probes:
  - {{slug: x-{action}, name: P, platform: x, action: {action}, interval: {interval}, locations: [a, b]}}
"""


def test_config_check_accepts_kind_x_with_a_schedule_within_xs_limits(monkeypatch):
    monkeypatch.setenv("XT", "token-value")
    data = config_load(_config(600))
    assert data["platforms"][0]["kind"] == "x"


def test_config_check_refuses_a_dm_schedule_over_xs_documented_dm_limits(monkeypatch):
    monkeypatch.setenv("XT", "token-value")
    with pytest.raises(ConfigError) as error:
        config_load(_config(60))
    # Two locations every minute: 30 DMs per 15 min (X allows 15), 2,880 per day (X allows 1,440)
    # and as many deletes per day (X allows 1,500).
    expected = [
        "platform x: the prober account would make 30 writes per 15 min counted as DMs, 80% or more of the "
        "platform's limit of 15",
        "platform x: the prober account would make 2880 writes per 24 h counted as DMs per day, 80% or more of "
        "the platform's limit of 1440",
        "platform x: the prober account would make 2880 writes per 24 h counted as DM deletes per day, 80% or "
        "more of the platform's limit of 1500",
    ]
    assert len(error.value.problems) == len(expected)
    for problem_text, wanted in zip(sorted(error.value.problems), sorted(expected)):
        assert wanted in problem_text


def test_the_budget_counts_a_limits_run_as_a_post_request():
    # 100 posts per 15 min: posting every 30 s from two locations is 60, with the limit check 120.
    probes = [{"slug": "p", "action": "post", "interval": 30, "locations": ["a", "b"]},
              {"slug": "l", "action": "limits", "interval": 30, "locations": ["a", "b"]}]
    problems = schedule_problems("x", probes)
    assert any("120 writes per 15 min counted as posts," in p for p in problems)
    assert not any("counted as posts" in p for p in schedule_problems("x", probes[:1]))


# --- recorded successes -----------------------------------------------------------------------
def test_a_recorded_post_is_read_back_and_deleted_with_its_rate_limit_headers_kept():
    x, created = make_adapter()
    with responses.RequestsMock() as rsps:
        items = interactions("x/test_client_create_and_delete_tweet.yaml")  # POST 201, DELETE 200
        replay(rsps, items[:1])
        # No read-back was recorded: the documented lookup shape, {"data": {"id", "text"}}.
        rsps.add("GET", f"{BASE}/2/tweets/{RECORDED_POST}", json={"data": {"id": RECORDED_POST, "text": "Test Tweet"}})
        replay(rsps, items[1:])
        x.execute("post")
        assert created == [CreatedArtifact("status", RECORDED_POST, "prober")]
        x.undo(created[0])
        calls = list(rsps.calls)
    assert [(s.name, s.status) for s in x.ctx.steps] == [("create post", 201), ("read back", 200), ("delete", 200)]
    assert sent_json(calls[0]).keys() == recorded_json("test_client_create_and_delete_tweet", 0, "request").keys()
    assert all(bearer(c) == f"Bearer {PROBER_TOKEN}" for c in calls)
    assert x.ctx.facts["rate_limits"]["create post"] == {
        "x-rate-limit-limit": "200", "x-rate-limit-remaining": "199", "x-rate-limit-reset": "1635976418"}
    assert x.ctx.facts["rate_limits"]["delete"]["x-rate-limit-limit"] == "50"


def test_the_prober_id_is_learnt_once_from_users_me_and_the_recorded_home_timeline_reads():
    x, _ = make_adapter(prober_id="")
    with responses.RequestsMock() as rsps:
        replay(rsps, [recorded("test_client_get_me", 0), recorded("test_client_get_home_timeline", 0)])
        rsps.add("GET", f"{BASE}/2/users/{PROBER_ID}/timelines/reverse_chronological",
                 json={"meta": {"result_count": 0}})  # an empty timeline has no `data`
        x.execute("read")
        x.execute("read")
        paths = [urlsplit(c.request.url).path for c in rsps.calls]
    assert x.ctx.facts["learnt_remote_ids"] == {"prober": PROBER_ID}
    assert paths == ["/2/users/me", f"/2/users/{PROBER_ID}/timelines/reverse_chronological",
                     f"/2/users/{PROBER_ID}/timelines/reverse_chronological"]


def test_a_recorded_repost_of_the_partners_kept_post_is_undone():
    x, created = make_adapter(fixture_id=REPOST_TARGET)
    with responses.RequestsMock() as rsps:
        replay(rsps, interactions("x/test_client_retweet_and_unretweet.yaml"))
        x.execute("repost")
        x.undo(created[0])
        calls = list(rsps.calls)
    assert created == [CreatedArtifact("reblog", REPOST_TARGET, "prober")]
    assert sent_json(calls[0]) == recorded_json("test_client_retweet_and_unretweet", 0, "request")
    assert [c.request.method for c in calls] == ["POST", "DELETE"]
    assert urlsplit(calls[1].request.url).path == f"/2/users/{PROBER_ID}/retweets/{REPOST_TARGET}"


def test_the_first_repost_makes_the_partners_target_post_with_the_partners_token():
    x, created = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json={"data": {"id": REPOST_TARGET, "text": "target"}}, status=201)
        replay(rsps, interactions("x/test_client_retweet_and_unretweet.yaml")[:1])
        x.execute("repost")
        calls = list(rsps.calls)
    assert bearer(calls[0]) == f"Bearer {PARTNER_TOKEN}" and bearer(calls[1]) == f"Bearer {PROBER_TOKEN}"
    assert x.ctx.facts["learnt_fixture_ids"] == {"partner": REPOST_TARGET}
    assert [a.kind for a in created] == ["reblog"]  # the target is kept, not cleaned


def test_a_recorded_follow_and_unfollow_succeeds():
    x, created = make_adapter(partner_id=FOLLOW_TARGET)
    with responses.RequestsMock() as rsps:
        replay(rsps, interactions("x/test_client_follow_and_unfollow_user.yaml"))
        x.execute("follow")
        x.undo(created[0])
        calls = list(rsps.calls)
    assert sent_json(calls[0]) == recorded_json("test_client_follow_and_unfollow_user", 0, "request")
    assert created == [CreatedArtifact("follow", FOLLOW_TARGET, "prober")]
    assert urlsplit(calls[1].request.url).path == f"/2/users/{PROBER_ID}/following/{FOLLOW_TARGET}"


def test_a_recorded_dm_is_seen_by_the_recipient_and_deleted_for_the_sender_only():
    x, created = make_adapter(partner_id=DM_PARTNER)
    sent = recorded_json("test_asyncclient_manage_and_lookup_direct_messages", 0)["data"]
    with responses.RequestsMock() as rsps:
        # The send, then the conversation's events as recorded (the same one-to-one conversation id
        # for both participants).
        replay(rsps, [recorded("test_asyncclient_manage_and_lookup_direct_messages", 0),
                      recorded("test_asyncclient_manage_and_lookup_direct_messages", 4)])
        rsps.add("DELETE", f"{BASE}/2/dm_events/{sent['dm_event_id']}", json={"data": {"deleted": True}})
        x.execute("dm")
        x.undo(created[0])
        calls = list(rsps.calls)
    assert created == [CreatedArtifact("direct_message", sent["dm_event_id"], "prober")]
    assert urlsplit(calls[1].request.url).path == f"/2/dm_conversations/{sent['dm_conversation_id']}/dm_events"
    assert bearer(calls[1]) == f"Bearer {PARTNER_TOKEN}"  # the recipient reads, not the sender
    assert bearer(calls[2]) == f"Bearer {PROBER_TOKEN}"
    assert "sender only" in x.ctx.facts["dm_cleanup"]


def test_a_dm_the_recipient_cannot_see_is_an_invariant_failure():
    x, created = make_adapter(partner_id=DM_PARTNER)
    with responses.RequestsMock() as rsps:
        replay(rsps, [recorded("test_asyncclient_manage_and_lookup_direct_messages", 0)])
        conversation = recorded_json("test_asyncclient_manage_and_lookup_direct_messages", 0)["data"]
        rsps.add("GET", f"{BASE}/2/dm_conversations/{conversation['dm_conversation_id']}/dm_events",
                 json={"meta": {"result_count": 0}})
        with pytest.raises(ProbeError) as failure:
            x.execute("dm")
    assert failure.value.failure_class == FailureClass.INVARIANT
    assert len(created) == 1  # on record, so it is still cleaned up


def test_a_post_that_cannot_be_read_back_is_an_invariant_failure_and_still_cleaned():
    x, created = make_adapter()
    missing = {"errors": [{"value": RECORDED_POST, "detail": f"Could not find tweet with id: [{RECORDED_POST}].",
                           "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                           "type": "https://api.twitter.com/2/problems/resource-not-found"}]}
    with responses.RequestsMock() as rsps:
        replay(rsps, [recorded("test_client_create_and_delete_tweet", 0)])
        rsps.add("GET", f"{BASE}/2/tweets/{RECORDED_POST}", json=missing)
        with pytest.raises(ProbeError) as failure:
            x.execute("post")
    assert failure.value.failure_class == FailureClass.INVARIANT
    assert created == [CreatedArtifact("status", RECORDED_POST, "prober")]


# --- failure classes from the documented formats ----------------------------------------------
LEGACY = [
    # (action, status, code, message, class)
    ("post", 403, 185, "User is over daily status update limit.", FailureClass.QUOTA_EXCEEDED),
    ("follow", 403, 161, "You are unable to follow more people at this time.", FailureClass.QUOTA_EXCEEDED),
    ("post", 403, 186, "Tweet needs to be a bit shorter.", FailureClass.REJECTED),
    ("post", 403, 187, "Status is a duplicate.", FailureClass.REJECTED),
    ("post", 403, 226, "This request looks like it might be automated. To protect our users from spam and other "
                       "malicious activity, we can't complete this action right now.", FailureClass.REJECTED),
    ("post", 403, 261, "Your App cannot perform write actions.", FailureClass.AUTH),
    ("post", 403, 326, "To protect our users from spam and other malicious activity, this account is temporarily "
                       "locked.", FailureClass.AUTH),
    ("dm", 403, 349, "You cannot send messages to this user.", FailureClass.REJECTED),
    ("post", 429, 88, "Rate limit exceeded", FailureClass.RATE_LIMITED),
    ("post", 503, 130, "Over capacity", FailureClass.SERVER_ERROR),
]
WRITE_PATH = {"post": "/2/tweets", "follow": f"/2/users/{PROBER_ID}/following",
              "dm": f"/2/dm_conversations/with/{DM_PARTNER}/messages"}


@pytest.mark.parametrize("action,status,code,message,expected", LEGACY, ids=[f"code-{c[2]}" for c in LEGACY])
def test_legacy_error_codes_map_to_failure_classes_without_a_diagnostic_read(action, status, code, message, expected):
    x, created = make_adapter(partner_id=DM_PARTNER)
    soon = str(int(time.time()) + 300)
    with responses.RequestsMock() as rsps:  # an unexpected diagnostic read would fail: nothing answers it
        rsps.add("POST", BASE + WRITE_PATH[action], json=legacy(code, message), status=status,
                 headers={"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": soon})
        with pytest.raises(ProbeError) as failure:
            x.execute(action)
        assert len(rsps.calls) == 1  # the code said enough: no diagnostic read
    assert failure.value.failure_class == expected
    assert failure.value.permanent == (expected in (FailureClass.AUTH, FailureClass.REJECTED))
    assert x.ctx.facts["platform_codes"] == [code]
    assert failure.value.result.error_text() == message
    assert f"(code {code})" in failure.value.message
    assert created == []


@pytest.mark.parametrize("host", ["https://api.x.com", "https://api.twitter.com"])
@pytest.mark.parametrize("kind,status,expected", [
    ("usage-capped", 429, FailureClass.QUOTA_EXCEEDED),
    ("rate-limit-exceeded", 429, FailureClass.RATE_LIMITED),
    ("client-forbidden", 403, FailureClass.AUTH),
    ("unsupported-authentication", 403, FailureClass.AUTH),
    ("not-authorized-for-resource", 403, FailureClass.REJECTED),
    ("invalid-request", 400, FailureClass.REJECTED),
])
def test_problem_types_are_matched_on_the_path_whatever_the_host(host, kind, status, expected):
    x, _ = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json=problem(kind, status, host=host), status=status,
                 content_type="application/problem+json")
        with pytest.raises(ProbeError) as failure:
            x.execute("post")
    assert failure.value.failure_class == expected
    assert x.ctx.facts["problem_types"] == [kind]


def _429(headers: dict) -> HttpResult:
    body = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
    return HttpResult("POST", "/2/tweets", 429, headers, json.dumps(body).encode(), 10)


NOW = datetime(2023, 2, 8, 22, 0, tzinfo=timezone.utc)


def test_a_429_with_a_near_reset_is_rate_limited():
    near = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int((NOW + timedelta(minutes=9)).timestamp()))}
    assert classify(_429(near), now=NOW) == FailureClass.RATE_LIMITED


def test_a_429_until_tomorrow_is_a_spent_quota():
    far = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int((NOW + timedelta(hours=20)).timestamp()))}
    assert classify(_429(far), now=NOW) == FailureClass.QUOTA_EXCEEDED


def test_a_429_with_the_24_hour_user_allowance_at_zero_is_a_spent_quota():
    headers = {"x-rate-limit-remaining": "99", "x-rate-limit-reset": str(int((NOW + timedelta(minutes=9)).timestamp())),
               "x-user-limit-24hour-limit": "17", "x-user-limit-24hour-remaining": "0"}
    assert classify(_429(headers), now=NOW) == FailureClass.QUOTA_EXCEEDED
    assert classify(_429({**headers, "x-user-limit-24hour-remaining": "3"}), now=NOW) == FailureClass.RATE_LIMITED


def test_code_88_with_a_far_reset_is_a_spent_quota():
    far = {"x-rate-limit-reset": str(int((NOW + timedelta(hours=20)).timestamp()))}
    result = HttpResult("POST", "/2/tweets", 429, far, json.dumps(legacy(88, "Rate limit exceeded")).encode(), 10)
    assert classify(result, now=NOW) == FailureClass.QUOTA_EXCEEDED


@pytest.mark.parametrize("status,expected", [(401, FailureClass.AUTH), (404, FailureClass.REJECTED),
                                             (500, FailureClass.SERVER_ERROR), (302, FailureClass.UNEXPECTED)])
def test_uncoded_statuses_map_to_failure_classes(status, expected):
    result = HttpResult("GET", "/2/users/me", status, {}, b'{"title":"x","type":"about:blank"}', 10)
    assert classify(result) == expected


@pytest.mark.parametrize("write_status,read_status,expected", [
    (503, 200, FailureClass.READ_ONLY), (503, 503, FailureClass.SERVER_ERROR),
    (403, 200, FailureClass.REJECTED), (403, 403, FailureClass.AUTH),
])
def test_an_uncoded_refused_write_is_explained_by_a_diagnostic_read(write_status, read_status, expected):
    x, _ = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", status=write_status,
                 json={"title": "Forbidden", "detail": "nope", "type": "about:blank", "status": write_status})
        me_ok(rsps, read_status)
        with pytest.raises(ProbeError) as failure:
            x.execute("post")
        assert urlsplit(rsps.calls[-1].request.url).path == "/2/users/me"
    assert failure.value.failure_class == expected


def test_a_2xx_with_only_errors_is_classified_by_its_identifiers():
    x, created = make_adapter(fixture_id=REPOST_TARGET)
    body = {"errors": [problem("not-authorized-for-resource", 403)]}
    with responses.RequestsMock() as rsps:
        rsps.add("POST", f"{BASE}/2/users/{PROBER_ID}/retweets", json=body, status=200)
        with pytest.raises(ProbeError) as failure:
            x.execute("repost")
    assert failure.value.failure_class == FailureClass.REJECTED
    assert created == []


def test_a_repost_refused_as_already_reposted_is_put_on_record_for_cleanup():
    x, created = make_adapter(fixture_id=REPOST_TARGET)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", f"{BASE}/2/users/{PROBER_ID}/retweets", status=403,
                 json=legacy(327, "You have already retweeted this Tweet."))
        with pytest.raises(ProbeError) as failure:
            x.execute("repost")
    assert failure.value.failure_class == FailureClass.REJECTED
    assert created == [CreatedArtifact("reblog", REPOST_TARGET, "prober")]


# --- the limits action ------------------------------------------------------------------------
@pytest.mark.parametrize("status,body,fact", [
    (403, legacy(186, "Tweet needs to be a bit shorter."), "403 code 186 (over-long)"),
    (400, problem("invalid-request", 400, detail="Your Tweet text is too long."), "400 invalid-request"),
])
def test_the_limits_probe_passes_when_the_overlong_post_is_refused_for_its_length(status, body, fact):
    x, created = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json=body, status=status)
        x.execute("limits")
        sent = sent_json(rsps.calls[0])["text"]
    assert len(sent) == 281 and sent.isascii()  # ASCII weighs 1 in X's weighted count
    assert x.ctx.facts["limit_refusal"] == fact
    assert "limit_untested" not in x.ctx.facts
    assert created == []


def test_an_accepted_overlong_post_is_an_invariant_failure_and_is_deleted():
    x, created = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json={"data": {"id": "1623", "text": "Vigie limit check"}}, status=201)
        rsps.add("DELETE", BASE + "/2/tweets/1623", json={"data": {"deleted": True}})
        with pytest.raises(ProbeError) as failure:
            x.execute("limits")
        x.undo(created[0])
    assert failure.value.failure_class == FailureClass.INVARIANT
    assert "281 characters was accepted over the limit of 280" in failure.value.message
    assert created == [CreatedArtifact("status", "1623", "prober")]


def test_an_overlong_post_refused_by_the_daily_limit_says_the_length_check_is_untested():
    x, _ = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json=legacy(185, "User is over daily status update limit."), status=403)
        x.execute("limits")
    assert "quota_exceeded" in x.ctx.facts["limit_untested"]


def test_an_overlong_post_refused_for_the_token_fails_the_limits_probe():
    x, _ = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json={"title": "Unauthorized", "type": "about:blank", "status": 401},
                 status=401)
        with pytest.raises(ProbeError) as failure:
            x.execute("limits")
    assert failure.value.failure_class == FailureClass.AUTH


# --- undo ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [404, 200])  # X answers missing resources either way
def test_undoing_a_post_already_gone_counts_as_done(status):
    x, _ = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("DELETE", BASE + "/2/tweets/1", json={"errors": [problem("resource-not-found", 404)]}, status=status)
        x.undo(CreatedArtifact("status", "1", "prober"))
    assert x.ctx.steps[-1].status == status


def test_an_undo_the_platform_did_not_do_raises_so_it_is_retried():
    x, _ = make_adapter()
    with responses.RequestsMock() as rsps:
        rsps.add("DELETE", f"{BASE}/2/users/{PROBER_ID}/following/{FOLLOW_TARGET}", json={"data": {"following": True}})
        with pytest.raises(ProbeError) as failure:
            x.undo(CreatedArtifact("follow", FOLLOW_TARGET, "prober"))
    assert failure.value.failure_class == FailureClass.UNEXPECTED


# --- through the real runner --------------------------------------------------------------------
@pytest.fixture
def x_platform(db):
    platform = Platform.objects.create(name="X", slug="x", kind="x", base_url=BASE)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    return platform


@pytest.fixture
def location(db):
    return Location.objects.create(name="sacramento")


def run(platform: Platform, action: str, location: Location) -> Run:
    probe = make_probe(platform, action, [location])
    placement = ProbeLocation.objects.get(probe=probe)
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=dj_timezone.now())


def no_token_in(value: object) -> bool:
    text = json.dumps(value)
    return PROBER_TOKEN not in text and PARTNER_TOKEN not in text


def stored(run_row: Run) -> list:
    row = Run.objects.get(id=run_row.id)
    return [row.error, row.steps, row.evidence] + list(Artifact.objects.values_list("last_error", flat=True))


@pytest.mark.django_db
def test_a_recorded_post_run_succeeds_learns_the_id_cleans_up_and_keeps_the_headers(x_platform, location):
    items = interactions("x/test_client_create_and_delete_tweet.yaml")
    with responses.RequestsMock() as rsps:
        replay(rsps, items[:1])
        rsps.add("GET", f"{BASE}/2/tweets/{RECORDED_POST}", json={"data": {"id": RECORDED_POST, "text": "Test Tweet"}})
        replay(rsps, items[1:])
        row = run(x_platform, "post", location)
    assert (row.outcome, row.failure_class, row.cleanup) == ("success", "", "done")
    assert Artifact.objects.get().cleaned_at is not None
    assert row.evidence["rate_limits"]["create post"]["x-rate-limit-remaining"] == "199"
    assert [s["path"] for s in row.evidence["cleanup_steps"]] == [f"/2/tweets/{RECORDED_POST}"]
    assert no_token_in(stored(row))


@pytest.mark.django_db
def test_a_run_learns_the_prober_id_once_and_keeps_it_on_the_account(x_platform, location):
    with responses.RequestsMock() as rsps:
        replay(rsps, [recorded("test_client_get_me", 0), recorded("test_client_get_home_timeline", 0)])
        row = run(x_platform, "read", location)
    assert row.outcome == "success"
    assert Account.objects.get(role="prober").remote_id == PROBER_ID
    assert "learnt_remote_ids" not in row.evidence


@pytest.mark.django_db
def test_the_february_2023_daily_limit_refusal_is_a_quota_failure_with_its_evidence(x_platform, location):
    Account.objects.filter(role="prober").update(remote_id=PROBER_ID)
    headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "97", "x-rate-limit-reset": "1675893600"}
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json=legacy(185, "User is over daily status update limit."), status=403,
                 headers=headers)
        row = run(x_platform, "post", location)
    assert (row.outcome, row.failure_class, row.cleanup) == ("failure", "quota_exceeded", "none")
    assert row.evidence["status_code"] == 403
    assert row.evidence["platform_error"] == "User is over daily status update limit."
    assert row.evidence["platform_codes"] == [185]
    assert row.evidence["rate_limit"] == headers
    assert not Artifact.objects.exists()
    assert not row.evidence.get("self_inflicted")  # Vigie wrote nothing: it is the platform's doing


@pytest.mark.django_db
def test_a_dm_refusal_explained_by_vigies_own_writes_is_self_inflicted(x_platform, location):
    Account.objects.filter(role="prober").update(remote_id=PROBER_ID)
    Account.objects.filter(role="partner").update(remote_id=DM_PARTNER)
    prober = Account.objects.get(role="prober")
    probe = make_probe(x_platform, "dm", [location])
    for i in range(int(15 * SELF_INFLICTED_SHARE)):  # 12 DMs in the last 15 min: 80 % of X's 15
        Artifact.objects.create(run_key=uuid.uuid4(), probe=probe, account=prober, kind="direct_message",
                                remote_id=str(i), cleaned_at=dj_timezone.now())
    with responses.RequestsMock() as rsps:
        rsps.add("POST", f"{BASE}/2/dm_conversations/with/{DM_PARTNER}/messages", status=429,
                 json=legacy(88, "Rate limit exceeded"),
                 headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(time.time()) + 600)})
        row = run_execute(placement_id=ProbeLocation.objects.get(probe=probe).id, run_key=str(uuid.uuid4()),
                          scheduled_for=dj_timezone.now())
    assert row.failure_class == "rate_limited"
    row.refresh_from_db()
    assert row.evidence["self_inflicted"] is True
    assert "12 of 15 DMs per 15 min" in " ".join(row.evidence["own_usage"])


@pytest.mark.django_db
def test_a_token_echoed_by_the_platform_never_reaches_stored_evidence(x_platform, location):
    echo = {"title": "Unauthorized", "type": "about:blank", "status": 401,
            "detail": f"Unauthorized: Bearer {PROBER_TOKEN} is not valid"}
    with responses.RequestsMock() as rsps:
        rsps.add("GET", BASE + "/2/users/me", json=echo, status=401)
        row = run(x_platform, "read", location)
    assert (row.outcome, row.failure_class) == ("failure", "auth")
    assert "[redacted]" in row.evidence["platform_error"]
    assert no_token_in(stored(row))


@pytest.mark.django_db
def test_an_accepted_overlong_post_run_is_an_invariant_failure_and_the_post_is_deleted(x_platform, location):
    with responses.RequestsMock() as rsps:
        rsps.add("POST", BASE + "/2/tweets", json={"data": {"id": "1623", "text": "Vigie limit check"}}, status=201)
        rsps.add("DELETE", BASE + "/2/tweets/1623", json={"data": {"deleted": True}})
        row = run(x_platform, "limits", location)
    assert (row.outcome, row.failure_class, row.cleanup) == ("failure", "invariant", "done")
    artifact = Artifact.objects.get()
    assert (artifact.kind, artifact.remote_id) == ("status", "1623") and artifact.cleaned_at is not None


@pytest.mark.django_db
def test_a_dm_whose_delete_fails_stays_on_the_ledger_until_the_retry_removes_it(x_platform, location):
    Account.objects.filter(role="prober").update(remote_id=PROBER_ID)
    Account.objects.filter(role="partner").update(remote_id=DM_PARTNER)
    sent = recorded_json("test_asyncclient_manage_and_lookup_direct_messages", 0)["data"]
    with responses.RequestsMock() as rsps:
        replay(rsps, [recorded("test_asyncclient_manage_and_lookup_direct_messages", 0),
                      recorded("test_asyncclient_manage_and_lookup_direct_messages", 4)])
        rsps.add("DELETE", f"{BASE}/2/dm_events/{sent['dm_event_id']}", status=500,
                 json={"errors": [{"code": 131, "message": "Internal error"}]})
        row = run(x_platform, "dm", location)
    assert (row.outcome, row.cleanup) == ("success", "pending")
    assert "sender only" in row.evidence["dm_cleanup"]
    artifact = Artifact.objects.get()
    assert artifact.cleaned_at is None and "Internal error" in artifact.last_error
    Artifact.objects.update(next_attempt_at=dj_timezone.now())
    with responses.RequestsMock() as rsps:
        rsps.add("DELETE", f"{BASE}/2/dm_events/{sent['dm_event_id']}", json={"data": {"deleted": True}})
        assert cleanup_pending(min_age=timedelta(0)) == 1
    assert Artifact.objects.get().cleaned_at is not None
    assert no_token_in(stored(row))
