"""Other Mastodon-compatible servers (Takahē and kin), replayed at the HTTP seam through the adapter and the runner.

No such server's exchanges were recorded, so each test takes the real recorded Mastodon exchanges
(tests/fixtures/recorded/mastodon, from Mastodon.py) and edits them into what those servers are
known to answer differently (issue 6): an over-long post refused with 400 rather than 422 and no
rate-limit headers at all; a reblog answered with the original status marked `reblogged: true`
rather than a wrapper status holding it in `reblog`; a deleted status answered 404 with an HTML
page rather than Mastodon's JSON `{"error": "Record not found"}`. Each test says what it edited.
"""
from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
import responses
from django.utils import timezone

from platforms.adapters.base import Credentials, RunContext
from platforms.adapters.mastodon import MastodonAdapter
from platforms.errors import ProbeError
from platforms.http import HttpSeam
from probes.models import Account, Artifact, FailureClass, Location, Outcome, Platform, Run
from probes.runner import run_execute
from tests.cassettes import interactions, recorded, replay
from tests.conftest import make_probe

BASE = "https://takahe.example"
TOKEN = "__MASTODON_PY_TEST_ACCESS_TOKEN"
# What Django (Takahē's framework) answers for an unknown object outside its API error handling.
DJANGO_404 = ('<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
              "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n")
RATE_LIMIT = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def edited(item: dict, *, status: int | None = None, body: object = None, html: str | None = None,
           rate_limit_headers: bool = True) -> dict:
    """A recorded interaction with its response changed: status, a JSON or HTML body, headers dropped."""
    item = copy.deepcopy(item)
    response = item["response"]
    if status is not None:
        response["status"] = {"code": status, "message": ""}
    if body is not None:
        response["body"]["string"] = json.dumps(body)
    if html is not None:
        response["body"]["string"] = html
        response["headers"]["content-type"] = ["text/html; charset=utf-8"]
    if not rate_limit_headers:
        response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() not in RATE_LIMIT}
    return item


def body_of(item: dict) -> dict:
    return json.loads(item["response"]["body"]["string"])


def adapter(*, partner_fixture: str = "") -> tuple[MastodonAdapter, list]:
    created: list = []
    http = HttpSeam(user_agent="Vigie/test (probe; location=test)", deadline=time.monotonic() + 10,
                    max_bytes=1_000_000, secrets=[TOKEN])
    ctx = RunContext(http=http, record_artifact=created.append, run_key="00000000-test")
    prober = Credentials("prober", "mastodonpy_test", TOKEN, "117020565966271181")
    partner = Credentials("partner", "admin", TOKEN, "", fixture_id=partner_fixture)
    return MastodonAdapter(base_url=BASE, prober=prober, partner=partner, ctx=ctx), created


# -- an over-long post refused with 400, and no rate-limit headers ------------------------------------

def overlong_refused(status: int) -> dict:
    """test_lang_for_errors.yaml's real 422 to an over-long post, edited to `status` with Takahē's words
    and without the x-ratelimit-* headers Takahē never sends."""
    return edited(recorded("mastodon/test_lang_for_errors.yaml", 0), status=status,
                  body={"error": "Status is too long"}, rate_limit_headers=False)


def test_the_limits_probe_takes_a_400_refusal_without_rate_limit_headers_as_the_limit_holding():
    mastodon, created = adapter()
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, interactions("mastodon/test_instance.yaml"))
        replay(rsps, BASE, [overlong_refused(400)])
        mastodon.execute("limits")
    assert created == []
    assert mastodon.ctx.facts["max_characters"] == 500
    assert "limit_untested" not in mastodon.ctx.facts
    assert [(s.name, s.status) for s in mastodon.ctx.steps][-1] == ("over-long post", 400)


def test_the_same_edited_refusal_as_a_success_is_caught_as_the_limit_not_enforced():
    """The counter-check of the test above: the recorded POST's own 200 (a status) with the
    rate-limit headers removed — an over-long post accepted."""
    mastodon, created = adapter()
    accepted = edited(recorded("mastodon/test_status.yaml", 0), rate_limit_headers=False)
    accepted["request"]["uri"] = accepted["request"]["uri"].split("?")[0]
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, interactions("mastodon/test_instance.yaml"))
        replay(rsps, BASE, [accepted])
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("limits")
    assert failure.value.failure_class == FailureClass.INVARIANT
    assert [a.remote_id for a in created] == [body_of(accepted)["id"]]  # recorded, so cleanup deletes it


def test_a_post_run_without_any_rate_limit_headers_succeeds_and_keeps_none():
    """test_status.yaml (POST, GET, DELETE) with every x-ratelimit-* header removed."""
    mastodon, created = adapter()
    items = [edited(item, rate_limit_headers=False) for item in interactions("mastodon/test_status.yaml")]
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, items)
        mastodon.execute("post")
        # The delete is verified by reading back: gone.
        rsps.add(responses.GET, f"{BASE}/api/v1/statuses/{created[0].remote_id}", status=404,
                 json={"error": "Record not found"})
        mastodon.undo(created[0])
    assert [s.status for s in mastodon.ctx.steps] == [200, 200, 200, 404]


def test_a_429_without_rate_limit_headers_is_rate_limited_not_quota():
    """test_status.yaml's POST edited to 429 "Too many requests" with no x-ratelimit-* headers: with no
    reset time there is no evidence of a far-away allowance."""
    mastodon, _ = adapter()
    throttled = edited(recorded("mastodon/test_status.yaml", 0), status=429, body={"error": "Too many requests"},
                       rate_limit_headers=False)
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, [throttled])
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("post")
    assert failure.value.failure_class == FailureClass.RATE_LIMITED
    assert failure.value.result.rate_limit() == {}


# -- a reblog answered as the original, `reblogged: true` ---------------------------------------------

def reblog_as_original(reblogged: bool = True) -> list[dict]:
    """test_status_reblog_unreblog.yaml with the reblog's answer (a wrapper status whose `reblog`
    is the original) replaced by that original itself, `reblogged` set."""
    items = copy.deepcopy(interactions("mastodon/test_status_reblog_unreblog.yaml"))
    original = body_of(items[1])["reblog"]
    original["reblogged"] = reblogged
    items[1] = edited(items[1], body=original)
    return items


def test_a_reblog_answered_as_the_original_is_recorded_and_undone_as_a_reblog():
    mastodon, created = adapter()
    items = reblog_as_original()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, items)
        mastodon.execute("repost")
        mastodon.undo(created[0])
    original_id = body_of(items[0])["id"]
    assert [(a.kind, a.remote_id) for a in created] == [("reblog", original_id)]
    assert [(s.name, s.path) for s in mastodon.ctx.steps][-1] == (
        "unreblog", f"/api/v1/statuses/{original_id}/unreblog")
    assert all(s.ok for s in mastodon.ctx.steps)


def test_an_original_answered_without_reblogged_is_not_taken_for_a_reblog():
    mastodon, created = adapter()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, reblog_as_original(reblogged=False))
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("repost")
    assert failure.value.failure_class == FailureClass.UNEXPECTED
    # The reblog was accepted (2xx): it is on record before the answer is checked, so whatever the
    # server did, the run undoes it (an unreblog of a post not reblogged is harmless).
    assert [a.kind for a in created] == ["reblog"]


# -- a deleted status: 404 with an HTML page -----------------------------------------------------------

def test_deleting_a_status_already_gone_with_an_html_404_counts_as_cleaned():
    """test_status.yaml's DELETE edited to 404 with Django's HTML not-found page."""
    mastodon, created = adapter()
    items = interactions("mastodon/test_status.yaml")
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, items[:2] + [edited(items[2], status=404, html=DJANGO_404)])
        mastodon.execute("post")
        rsps.add(responses.GET, f"{BASE}/api/v1/statuses/{created[0].remote_id}", status=404, body=DJANGO_404,
                 content_type="text/html")  # read back: gone
        mastodon.undo(created[0])  # raises if the 404 page were taken for a failure
    assert [s.status for s in mastodon.ctx.steps][-2:] == [404, 404]


def test_unreblogging_a_deleted_original_with_an_html_404_counts_as_cleaned():
    """test_status_reblog_unreblog.yaml's unreblog edited to 404 with Django's HTML not-found page."""
    mastodon, created = adapter()
    items = copy.deepcopy(interactions("mastodon/test_status_reblog_unreblog.yaml"))
    items[2] = edited(items[2], status=404, html=DJANGO_404)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, items)
        mastodon.execute("repost")
        mastodon.undo(created[0])
    assert mastodon.ctx.steps[-1].status == 404


def test_a_post_whose_read_back_is_an_html_404_is_an_invariant_failure():
    """test_status.yaml's read-back GET edited to 404 with Django's HTML not-found page."""
    mastodon, created = adapter()
    items = interactions("mastodon/test_status.yaml")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, [items[0], edited(items[1], status=404, html=DJANGO_404)])
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("post")
    assert failure.value.failure_class == FailureClass.INVARIANT
    assert failure.value.message == "the post was accepted but cannot be read back"
    assert [a.kind for a in created] == ["status"]  # still recorded, so it is deleted


def test_a_deleted_repost_target_answered_with_an_html_404_is_made_again():
    """test_status_reblog_unreblog.yaml, plus a reblog of an older target id edited from the recorded
    reblog into a 404 with Django's HTML not-found page."""
    items = interactions("mastodon/test_status_reblog_unreblog.yaml")
    stale = edited(items[1], status=404, html=DJANGO_404)
    stale["request"]["uri"] = stale["request"]["uri"].replace(body_of(items[0])["id"], "110000000000000001")
    mastodon, created = adapter(partner_fixture="110000000000000001")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, [stale] + items)
        mastodon.execute("repost")
    new_target = body_of(items[0])["id"]
    assert [s.name for s in mastodon.ctx.steps] == ["reblog", "make repost target", "reblog"]
    assert mastodon.partner.fixture_id == new_target
    assert [(a.kind, a.remote_id) for a in created] == [("reblog", new_target)]


def test_a_direct_message_the_recipient_gets_an_html_404_for_is_an_invariant_failure():
    """test_conversations.yaml's sent DM, an empty conversation list, and the recipient's GET of the
    message edited from test_status.yaml's read-back into a 404 with Django's HTML page."""
    mastodon, _ = adapter()
    sent = recorded("mastodon/test_conversations.yaml", 1)
    opened = edited(recorded("mastodon/test_status.yaml", 1), status=404, html=DJANGO_404)
    opened["request"]["uri"] = f"http://localhost:3000/api/v1/statuses/{body_of(sent)['id']}"
    with responses.RequestsMock() as rsps:
        replay(rsps, BASE, [sent])
        rsps.add("GET", BASE + "/api/v1/conversations", json=[])
        replay(rsps, BASE, [opened])
        with pytest.raises(ProbeError) as failure:
            mastodon.execute("dm")
    assert failure.value.failure_class == FailureClass.INVARIANT


# -- through the runner: the run, its evidence and its cleanup ------------------------------------------

@pytest.fixture
def takahe(db):
    platform = Platform.objects.create(name="Takahē", slug="takahe", kind="mastodon", base_url=BASE)
    Account.objects.create(platform=platform, role="prober", username="mastodonpy_test", token=TOKEN,
                           remote_id="117020565966271181")
    Account.objects.create(platform=platform, role="partner", username="admin", token=TOKEN)
    return platform


def run(platform: Platform, action: str) -> Run:
    probe = make_probe(platform, action, [Location.objects.create(name="sacramento")])
    placement = probe.placements.get()
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


def test_a_run_whose_post_reads_back_as_an_html_404_fails_as_invariant_and_still_cleans_up(takahe):
    items = interactions("mastodon/test_status.yaml")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, [edited(items[0], rate_limit_headers=False),
                            edited(items[1], status=404, html=DJANGO_404, rate_limit_headers=False),
                            edited(items[2], status=404, html=DJANGO_404, rate_limit_headers=False)])
        result = run(takahe, "post")
    assert (result.outcome, result.failure_class) == (Outcome.FAILURE, FailureClass.INVARIANT)
    assert result.evidence["status_code"] == 404
    assert result.evidence["rate_limit"] == {}
    assert result.cleanup == Run.Cleanup.DONE  # the delete's HTML 404 means gone
    assert Artifact.objects.get().cleaned_at is not None


def test_a_run_reposting_on_a_server_answering_the_original_succeeds_and_cleans_up(takahe):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        replay(rsps, BASE, [edited(item, rate_limit_headers=False) for item in reblog_as_original()])
        result = run(takahe, "repost")
    assert result.outcome == Outcome.SUCCESS, result.evidence
    assert result.cleanup == Run.Cleanup.DONE
    artifact = Artifact.objects.get()
    assert (artifact.kind, artifact.cleaned_at is not None) == ("reblog", True)
