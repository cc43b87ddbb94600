"""The Bluesky adapter through the real runner, against XRPC exchanges built from the lexicons.

A small in-memory PDS answers at the `requests` seam (with `responses`): createSession,
refreshSession, createRecord, getRecord, deleteRecord, resolveHandle, getTimeline, getSession and
the chat service's getConvoForMembers, sendMessage, getMessages and deleteMessageForSelf, with
their lexicon shapes and documented errors (`{"error": <Name>, "message": …}`, RateLimit-*
headers). Everything else is real: runner, Run rows, evidence, the Artifact ledger, cleanup.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone as dt_timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.db import connection
from django.utils import timezone

from platforms.adapters import adapter_class
from platforms.adapters.bluesky import CLEANUP_NOTE, BlueskyAdapter, classify
from detection.budget import own_usage, schedule_problems
from platforms.http import HttpResult
from probes.models import Account, Artifact, FailureClass, Outcome, Platform, ProbeLocation, Run
from probes.runner import cleanup_pending, run_execute
from tests.conftest import make_probe

BASE = "https://pds.bsky.example"
PROBER = ("vigie-prober.bsky.example", "did:plc:vigieprober000000000000", "abcd-efgh-ijkl-mnop")
PARTNER = ("vigie-partner.bsky.example", "did:plc:vigiepartner00000000000", "qrst-uvwx-yzab-cdef")
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"


def jwt() -> str:
    return f"eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NksifQ.{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(24)}"


def xrpc_error(status: int, name: str, message: str, headers: dict | None = None) -> tuple[int, dict, str]:
    return status, {"content-type": "application/json; charset=utf-8", **(headers or {})}, \
        json.dumps({"error": name, "message": message})


class FakePDS:
    """What a PDS (with the chat service behind its proxy) answers, per the lexicons."""

    def __init__(self) -> None:
        self.accounts = {h: {"did": d, "password": p} for h, d, p in (PROBER, PARTNER)}
        self.access: dict[str, str] = {}  # valid access token → did
        self.refresh: dict[str, str] = {}  # valid refresh token → did
        self.expired: set[str] = set()
        self.issued: list[str] = []  # every JWT handed out: none may end up stored
        self.records: dict[str, dict] = {}  # at:// uri → {"cid", "value"}
        self.messages: list[dict] = []  # {"id", "convo", "sender", "text", "hidden_for": set()}
        self.calls: list[tuple[str, str]] = []  # (nsid, did or "")
        self.faults: dict[str, list] = {}  # nsid → queued answers (or callables making them)
        self.expired_status = 400
        self.accept_overlong = False
        self.deliver = True
        self.takedown = False
        self.born_expired = False  # sessions whose access token is refused as expired at once
        self._seq = 0

    # --- plumbing ---
    def install(self, rsps: responses.RequestsMock) -> None:
        pattern = re.compile(re.escape(BASE) + r"/xrpc/([A-Za-z.]+)(\?.*)?$")
        for method in ("GET", "POST"):
            rsps.add_callback(method, pattern, callback=self.answer)

    def count(self, nsid: str) -> int:
        return sum(1 for name, _ in self.calls if name == nsid)

    def fail(self, nsid: str, answer, times: int = 1) -> None:
        self.faults.setdefault(nsid, []).extend([answer] * times)

    def expire_access_tokens(self) -> None:
        self.expired |= set(self.access)
        self.access.clear()

    def revoke_refresh_tokens(self) -> None:
        self.refresh.clear()

    def _next(self) -> str:
        self._seq += 1
        return f"3l{self._seq:011d}"

    def _session(self, did: str, handle: str) -> dict:
        access, refresh = jwt(), jwt()
        self.access[access], self.refresh[refresh] = did, did
        if self.born_expired:
            del self.access[access]
            self.expired.add(access)
        self.issued += [access, refresh]
        return {"accessJwt": access, "refreshJwt": refresh, "handle": handle, "did": did, "active": True}

    def answer(self, request):
        nsid = re.search(r"/xrpc/([A-Za-z.]+)", request.url).group(1)
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        body = json.loads(request.body) if request.body else {}
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append((nsid, self.access.get(bearer) or self.refresh.get(bearer, "")))
        if self.faults.get(nsid):
            fault = self.faults[nsid].pop(0)
            return fault(request) if callable(fault) else fault
        if nsid.startswith("chat.") and request.headers.get("atproto-proxy") != CHAT_PROXY:
            return xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")
        handler = getattr(self, "on_" + nsid.replace(".", "_"))
        if nsid in ("com.atproto.server.createSession", "com.atproto.identity.resolveHandle",
                    "com.atproto.repo.getRecord"):
            return handler(params, body, bearer)
        if nsid == "com.atproto.server.refreshSession":
            return handler(params, body, bearer)
        if bearer in self.expired:
            return xrpc_error(self.expired_status, "ExpiredToken", "Token has expired")
        did = self.access.get(bearer)
        if did is None:
            return xrpc_error(400, "InvalidToken", "Token could not be verified")
        return handler(params, body, did)

    @staticmethod
    def ok(data: dict, headers: dict | None = None) -> tuple[int, dict, str]:
        return 200, {"content-type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(data)

    # --- com.atproto.server / identity ---
    def on_com_atproto_server_createSession(self, params, body, _):
        if self.takedown:
            return xrpc_error(400, "AccountTakedown", "Account has been taken down")
        account = self.accounts.get(body.get("identifier"))
        if account is None or account["password"] != body.get("password"):
            return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return self.ok(self._session(account["did"], body["identifier"]))

    def on_com_atproto_server_refreshSession(self, params, body, bearer):
        did = self.refresh.pop(bearer, None)  # refresh tokens are single-use
        if did is None:
            return xrpc_error(400, "ExpiredToken", "Token has been revoked")
        handle = next(h for h, a in self.accounts.items() if a["did"] == did)
        return self.ok({k: v for k, v in self._session(did, handle).items() if k != "active"})

    def on_com_atproto_server_getSession(self, params, body, did):
        return self.ok({"did": did, "handle": next(h for h, a in self.accounts.items() if a["did"] == did)})

    def on_com_atproto_identity_resolveHandle(self, params, body, _):
        account = self.accounts.get(params.get("handle"))
        if account is None:
            return xrpc_error(400, "HandleNotFound", "Unable to resolve handle")
        return self.ok({"did": account["did"]})

    # --- com.atproto.repo ---
    def on_com_atproto_repo_createRecord(self, params, body, did):
        if body.get("repo") != did:
            return xrpc_error(401, "AuthenticationRequired", "Input/repo must be the authenticated account")
        record = body["record"]
        if body["collection"] == "app.bsky.feed.post" and len(record.get("text", "")) > 300 \
                and not self.accept_overlong:
            return xrpc_error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: Record/text must not be "
                                                     "longer than 300 graphemes")
        uri = f"at://{did}/{body['collection']}/{self._next()}"
        cid = "bafyreie" + secrets.token_hex(20)
        self.records[uri] = {"cid": cid, "value": record}
        return self.ok({"uri": uri, "cid": cid, "commit": {"cid": "bafyreic" + secrets.token_hex(8), "rev": self._next()},
                        "validationStatus": "valid"},
                       {"RateLimit-Limit": "5000", "RateLimit-Remaining": "4997",
                        "RateLimit-Reset": str(int(time.time()) + 3000), "RateLimit-Policy": "5000;w=3600"})

    def on_com_atproto_repo_getRecord(self, params, body, _):
        uri = f"at://{params['repo']}/{params['collection']}/{params['rkey']}"
        if uri not in self.records:
            return xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return self.ok({"uri": uri, "cid": self.records[uri]["cid"], "value": self.records[uri]["value"]})

    def on_com_atproto_repo_deleteRecord(self, params, body, did):
        if body["repo"] != did:
            return xrpc_error(401, "AuthenticationRequired", "Input/repo must be the authenticated account")
        self.records.pop(f"at://{body['repo']}/{body['collection']}/{body['rkey']}", None)
        return self.ok({"commit": {"cid": "bafyreic" + secrets.token_hex(8), "rev": self._next()}})

    def on_app_bsky_feed_getTimeline(self, params, body, did):
        return self.ok({"cursor": "1732500000000::bafyrei", "feed": [
            {"post": {"uri": uri, "cid": r["cid"], "record": r["value"]}} for uri, r in self.records.items()
            if r["value"].get("$type") == "app.bsky.feed.post"][: int(params.get("limit", 50))]})

    # --- chat.bsky.convo (through the proxy) ---
    def on_chat_bsky_convo_getConvoForMembers(self, params, body, did):
        members = sorted({did, params["members"]})
        return self.ok({"convo": {"id": "convo" + "".join(m[-6:] for m in members), "rev": self._next(),
                                  "members": [{"did": m} for m in members], "muted": False, "unreadCount": 0}})

    def on_chat_bsky_convo_sendMessage(self, params, body, did):
        message = {"id": self._next(), "rev": self._next(), "text": body["message"]["text"],
                   "sender": {"did": did}, "sentAt": datetime.now(dt_timezone.utc).isoformat()}
        self.messages.append({**message, "convo": body["convoId"], "hidden_for": set(), "delivered": self.deliver})
        return self.ok(message)

    def on_chat_bsky_convo_getMessages(self, params, body, did):
        seen = [{k: m[k] for k in ("id", "rev", "text", "sender", "sentAt")} for m in self.messages
                if m["convo"] == params["convoId"] and did not in m["hidden_for"]
                and (m["delivered"] or m["sender"]["did"] == did)]
        return self.ok({"messages": list(reversed(seen))})

    def on_chat_bsky_convo_deleteMessageForSelf(self, params, body, did):
        for m in self.messages:
            if m["id"] == body["messageId"] and m["convo"] == body["convoId"]:
                m["hidden_for"].add(did)
                return self.ok({"$type": "chat.bsky.convo.defs#deletedMessageView", "id": m["id"], "rev": m["rev"],
                                "sender": m["sender"], "sentAt": m["sentAt"]})
        return xrpc_error(400, "InvalidConvo", "Convo not found")

    def visible_to(self, did: str) -> list[dict]:
        return [m for m in self.messages if did not in m["hidden_for"] and (m["delivered"] or m["sender"]["did"] == did)]

    def left_by(self, did: str) -> list[str]:
        return [uri for uri in self.records if uri.startswith(f"at://{did}/")]


@pytest.fixture
def pds():
    fake = FakePDS()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        yield fake


@pytest.fixture
def bluesky(db):
    platform = Platform.objects.create(name="Bluesky", slug="bluesky", kind="bluesky", base_url=BASE)
    Account.objects.create(platform=platform, role="prober", username=PROBER[0], token=PROBER[2])
    Account.objects.create(platform=platform, role="partner", username=PARTNER[0], token=PARTNER[2])
    return platform


def run_once(probe, location) -> Run:
    placement = ProbeLocation.objects.get(probe=probe, location=location)
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


def prober() -> Account:
    return Account.objects.get(role="prober")


def step_names(run: Run) -> list[str]:
    return [s["name"] for s in run.steps]


def stored_text() -> str:
    """Everything Vigie keeps about runs and artifacts, as one text to search for secrets."""
    runs = list(Run.objects.values("error", "steps", "evidence", "failure_class"))
    artifacts = list(Artifact.objects.values("remote_id", "last_error"))
    return json.dumps(runs, default=str) + json.dumps(artifacts, default=str)


# --- every action ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_post_is_created_read_back_and_deleted_by_its_rkey(bluesky, locations, pds):
    run = run_once(make_probe(bluesky, "post", locations), locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert step_names(run) == ["log in (prober)", "create post", "read back"]
    artifact = Artifact.objects.get()
    assert artifact.kind == Artifact.Kind.STATUS
    assert re.fullmatch(r"at://did:plc:vigieprober0+/app\.bsky\.feed\.post/3l\d{11}", artifact.remote_id)
    assert artifact.cleaned_at is not None and run.cleanup == Run.Cleanup.DONE
    assert [s["name"] for s in run.evidence["cleanup_steps"]] == ["delete record"]
    assert pds.left_by(PROBER[1]) == []
    assert run.evidence["rate_limit"]["ratelimit-policy"] == "5000;w=3600"


@pytest.mark.django_db
def test_a_post_that_cannot_be_read_back_is_an_invariant_failure_and_is_deleted(bluesky, locations, pds):
    pds.fail("com.atproto.repo.getRecord", lambda request: xrpc_error(
        400, "RecordNotFound", "Could not locate record"))
    run = run_once(make_probe(bluesky, "post", locations), locations[0])
    assert run.failure_class == FailureClass.INVARIANT
    assert run.evidence["request"] == "GET /xrpc/com.atproto.repo.getRecord"
    assert Artifact.objects.get().cleaned_at is not None and pds.left_by(PROBER[1]) == []


@pytest.mark.django_db
def test_a_repost_reposts_the_partners_kept_post_and_undoes_only_the_repost(bluesky, locations, pds):
    probe = make_probe(bluesky, "repost", locations)
    first = run_once(probe, locations[0])
    assert first.outcome == Outcome.SUCCESS, (first.error, first.steps)
    target = Account.objects.get(role="partner").fixture_id
    assert pds.left_by(PARTNER[1]) == [target]  # the kept target stays
    assert pds.left_by(PROBER[1]) == []  # the repost is gone
    repost = Artifact.objects.get()
    assert repost.kind == Artifact.Kind.REBLOG and "/app.bsky.feed.repost/" in repost.remote_id
    assert repost.cleaned_at is not None

    second = run_once(probe, locations[1])
    assert second.outcome == Outcome.SUCCESS, (second.error, second.steps)
    assert step_names(second) == ["repost target", "repost"]  # sessions and target reused
    assert Account.objects.get(role="partner").fixture_id == target
    reposts = [c for c in pds.calls if c == ("com.atproto.repo.createRecord", PROBER[1])]
    assert len(reposts) == 2


@pytest.mark.django_db
def test_a_deleted_repost_target_is_made_again(bluesky, locations, pds):
    probe = make_probe(bluesky, "repost", locations)
    run_once(probe, locations[0])
    old = Account.objects.get(role="partner").fixture_id
    pds.records.pop(old)
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    new = Account.objects.get(role="partner").fixture_id
    assert new != old and pds.left_by(PARTNER[1]) == [new]


@pytest.mark.django_db
def test_a_follow_names_the_partners_did_resolved_without_logging_in_as_the_partner(bluesky, locations, pds):
    run = run_once(make_probe(bluesky, "follow", locations), locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert step_names(run) == ["resolve handle (partner)", "log in (prober)", "follow"]
    assert Account.objects.get(role="partner").remote_id == PARTNER[1]
    assert Account.objects.get(role="partner").session == ""
    follow = Artifact.objects.get()
    assert follow.kind == Artifact.Kind.FOLLOW and follow.cleaned_at is not None
    assert pds.left_by(PROBER[1]) == []


@pytest.mark.django_db
def test_a_direct_message_reaches_the_partner_and_is_hidden_only_for_the_sender(bluesky, locations, pds):
    run = run_once(make_probe(bluesky, "dm", locations), locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert step_names(run) == ["resolve handle (partner)", "log in (prober)", "open conversation", "send",
                               "log in (partner)", "recipient reads"]
    assert run.evidence["cleanup_note"] == CLEANUP_NOTE
    assert [s["name"] for s in run.evidence["cleanup_steps"]] == ["hide message"]
    assert run.cleanup == Run.Cleanup.DONE
    # Every chat call went through the proxy (the fake answers 501 without the header).
    assert pds.count("chat.bsky.convo.deleteMessageForSelf") == 1
    assert pds.visible_to(PROBER[1]) == []
    assert len(pds.visible_to(PARTNER[1])) == 1  # what the note says: the partner keeps its copy


@pytest.mark.django_db
def test_a_direct_message_the_recipient_cannot_see_is_an_invariant_failure(bluesky, locations, pds):
    pds.deliver = False
    run = run_once(make_probe(bluesky, "dm", locations), locations[0])
    assert run.failure_class == FailureClass.INVARIANT
    assert run.evidence["cleanup_note"] == CLEANUP_NOTE
    assert Artifact.objects.get().cleaned_at is not None


@pytest.mark.django_db
def test_reading_the_timeline_succeeds(bluesky, locations, pds):
    run = run_once(make_probe(bluesky, "read", locations), locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert step_names(run) == ["log in (prober)", "home timeline"]
    assert run.cleanup == Run.Cleanup.NONE


@pytest.mark.django_db
def test_the_limits_probe_passes_when_an_overlong_post_is_refused(bluesky, locations, pds):
    run = run_once(make_probe(bluesky, "limits", locations), locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert run.evidence["refused_with"] == "400 InvalidRequest"
    assert run.evidence["max_graphemes"] == 300
    assert not Artifact.objects.exists() and pds.records == {}


@pytest.mark.django_db
def test_an_overlong_post_refused_by_a_quota_leaves_the_limit_untested_not_failed(bluesky, locations, pds):
    pds.fail("com.atproto.repo.createRecord", xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", {
        "RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + 36000)}))
    run = run_once(make_probe(bluesky, "limits", locations), locations[0])
    assert run.outcome == Outcome.SUCCESS
    assert "quota_exceeded" in run.evidence["limit_untested"]
    assert "refused_with" not in run.evidence


@pytest.mark.django_db
def test_an_accepted_overlong_post_is_an_invariant_failure_and_is_deleted(bluesky, locations, pds):
    pds.accept_overlong = True
    run = run_once(make_probe(bluesky, "limits", locations), locations[0])
    assert run.outcome == Outcome.FAILURE
    assert run.failure_class == FailureClass.INVARIANT
    assert "301 graphemes" in run.error
    artifact = Artifact.objects.get()
    assert artifact.kind == Artifact.Kind.STATUS and artifact.cleaned_at is not None
    assert run.cleanup == Run.Cleanup.DONE
    assert pds.records == {}


# --- the session -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_one_session_serves_two_runs(bluesky, locations, pds):
    probe = make_probe(bluesky, "post", locations)
    runs = [run_once(probe, locations[0]), run_once(probe, locations[1])]
    assert [r.outcome for r in runs] == [Outcome.SUCCESS, Outcome.SUCCESS]
    assert pds.count("com.atproto.server.createSession") == 1
    assert pds.count("com.atproto.server.refreshSession") == 0
    assert step_names(runs[1]) == ["create post", "read back"]
    kept = json.loads(prober().session)
    assert kept["did"] == PROBER[1] and kept["accessJwt"] in pds.access
    assert prober().remote_id == PROBER[1]
    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute("SELECT session FROM probes_account WHERE role = 'prober'")
        raw = cursor.fetchone()[0]
    assert raw and kept["accessJwt"] not in raw and PROBER[1] not in raw


@pytest.mark.django_db
@pytest.mark.parametrize("status", [400, 401])
def test_an_expired_access_token_is_refreshed_not_a_new_login(bluesky, locations, pds, status):
    probe = make_probe(bluesky, "post", locations)
    run_once(probe, locations[0])
    before = json.loads(prober().session)
    pds.expired_status = status
    pds.expire_access_tokens()
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert step_names(run) == ["create post", "refresh session (prober)", "create post", "read back"]
    assert run.steps[0]["status"] == status
    assert pds.count("com.atproto.server.createSession") == 1
    after = json.loads(prober().session)
    assert after["accessJwt"] != before["accessJwt"] and after["refreshJwt"] != before["refreshJwt"]
    assert after["accessJwt"] in pds.access


@pytest.mark.django_db
def test_a_refused_refresh_logs_in_once_and_keeps_the_new_session(bluesky, locations, pds):
    probe = make_probe(bluesky, "read", locations)
    run_once(probe, locations[0])
    pds.expire_access_tokens()
    pds.revoke_refresh_tokens()
    run = run_once(probe, locations[0])
    assert run.outcome == Outcome.SUCCESS, (run.error, run.steps)
    assert step_names(run) == ["home timeline", "refresh session (prober)", "log in (prober)", "home timeline"]
    assert pds.count("com.atproto.server.createSession") == 2
    assert json.loads(prober().session)["accessJwt"] in pds.access
    # The next run uses the new session without another login.
    assert step_names(run_once(probe, locations[1])) == ["home timeline"]
    assert pds.count("com.atproto.server.createSession") == 2


@pytest.mark.django_db
def test_a_refresh_refused_by_a_server_error_spends_no_login(bluesky, locations, pds):
    probe = make_probe(bluesky, "read", locations)
    run_once(probe, locations[0])
    pds.expire_access_tokens()
    pds.fail("com.atproto.server.refreshSession", xrpc_error(502, "UpstreamFailure", "Upstream Failure"))
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.SERVER_ERROR
    assert pds.count("com.atproto.server.createSession") == 1


@pytest.mark.django_db
def test_a_fresh_session_refused_as_expired_is_an_auth_failure_without_a_second_login(bluesky, locations, pds):
    pds.born_expired = True
    run = run_once(make_probe(bluesky, "read", locations), locations[0])
    assert run.failure_class == FailureClass.AUTH
    assert run.evidence["platform_error"] == "ExpiredToken"
    assert step_names(run) == ["log in (prober)", "home timeline"]
    assert pds.count("com.atproto.server.createSession") == 1


@pytest.mark.django_db
def test_a_new_app_password_discards_the_kept_session(bluesky, locations, pds):
    probe = make_probe(bluesky, "read", locations)
    run_once(probe, locations[0])
    pds.accounts[PROBER[0]]["password"] = "zzzz-yyyy-xxxx-wwww"
    Account.objects.filter(role="prober").update(token="zzzz-yyyy-xxxx-wwww")
    run = run_once(probe, locations[0])
    assert step_names(run) == ["log in (prober)", "home timeline"]
    assert run.outcome == Outcome.SUCCESS


@pytest.mark.django_db
def test_a_wrong_app_password_is_an_auth_failure_after_a_single_login(bluesky, locations, pds):
    Account.objects.filter(role="prober").update(token="wrong-wrong-wrong-wrong")
    run = run_once(make_probe(bluesky, "post", locations), locations[0])
    assert run.failure_class == FailureClass.AUTH
    assert run.evidence["status_code"] == 401
    assert run.evidence["platform_error"] == "AuthenticationRequired"
    assert pds.count("com.atproto.server.createSession") == 1
    assert "accessJwt" not in json.loads(prober().session)


@pytest.mark.django_db
def test_a_refused_app_password_is_not_tried_again_for_a_while_unless_it_changes(bluesky, locations, pds):
    Account.objects.filter(role="prober").update(token="wrong-wrong-wrong-wrong")
    probe = make_probe(bluesky, "read", locations)
    run_once(probe, locations[0])
    again = run_once(probe, locations[1])
    assert again.failure_class == FailureClass.AUTH and again.steps == []
    assert "not tried again before" in again.error
    assert pds.count("com.atproto.server.createSession") == 1
    # Once the pause is over, it is tried again (and refused again).
    marker = json.loads(prober().session)
    marker["login_refused_at"] = (datetime.now(dt_timezone.utc) - timedelta(minutes=16)).isoformat()
    Account.objects.filter(role="prober").update(session=json.dumps(marker))
    assert run_once(probe, locations[0]).failure_class == FailureClass.AUTH
    assert pds.count("com.atproto.server.createSession") == 2
    # A new app password is tried at once, and its session kept.
    Account.objects.filter(role="prober").update(token=PROBER[2])
    assert run_once(probe, locations[1]).outcome == Outcome.SUCCESS
    assert pds.count("com.atproto.server.createSession") == 3
    assert json.loads(prober().session)["accessJwt"] in pds.access


@pytest.mark.django_db
def test_a_taken_down_account_is_an_auth_failure(bluesky, locations, pds):
    pds.takedown = True
    run = run_once(make_probe(bluesky, "read", locations), locations[0])
    assert run.failure_class == FailureClass.AUTH
    assert run.evidence["platform_error"] == "AccountTakedown"
    assert "Account has been taken down" in run.error


@pytest.mark.django_db
def test_an_invalid_token_is_an_auth_failure_without_a_login(bluesky, locations, pds):
    probe = make_probe(bluesky, "read", locations)
    run_once(probe, locations[0])
    pds.access.clear()  # the kept access token is no longer recognised (not expired)
    run = run_once(probe, locations[0])
    assert run.failure_class == FailureClass.AUTH
    assert run.evidence["platform_error"] == "InvalidToken"
    assert pds.count("com.atproto.server.createSession") == 1


# --- failure classes ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_rate_limit_with_a_near_reset_is_rate_limited_with_its_headers_in_the_evidence(bluesky, locations, pds):
    reset = str(int(time.time()) + 120)
    pds.fail("com.atproto.repo.createRecord", xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", {
        "RateLimit-Limit": "5000", "RateLimit-Remaining": "0", "RateLimit-Reset": reset,
        "RateLimit-Policy": "5000;w=3600"}))
    run = run_once(make_probe(bluesky, "post", locations), locations[0])
    assert run.failure_class == FailureClass.RATE_LIMITED
    assert run.evidence["status_code"] == 429
    assert run.evidence["rate_limit"] == {"ratelimit-limit": "5000", "ratelimit-remaining": "0",
                                          "ratelimit-reset": reset, "ratelimit-policy": "5000;w=3600"}
    assert not Artifact.objects.exists()


@pytest.mark.django_db
def test_a_rate_limit_until_tomorrow_is_an_exhausted_quota(bluesky, locations, pds):
    pds.fail("com.atproto.repo.createRecord", xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", {
        "RateLimit-Limit": "35000", "RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + 36000),
        "RateLimit-Policy": "35000;w=86400"}))
    run = run_once(make_probe(bluesky, "follow", locations), locations[0])
    assert run.failure_class == FailureClass.QUOTA_EXCEEDED
    assert run.evidence["rate_limit"]["ratelimit-policy"] == "35000;w=86400"


def test_a_daily_limit_is_a_quota_even_when_its_window_ends_soon():
    now = datetime(2026, 11, 25, 23, 58, tzinfo=dt_timezone.utc)
    headers = {"ratelimit-remaining": "0", "ratelimit-reset": str(int(now.timestamp()) + 120),
               "ratelimit-policy": "35000;w=86400"}
    body = json.dumps({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}).encode()
    assert classify(HttpResult("POST", "/xrpc/x", 429, headers, body, 5), now=now) == FailureClass.QUOTA_EXCEEDED
    headers["ratelimit-policy"] = "5000;w=3600"
    assert classify(HttpResult("POST", "/xrpc/x", 429, headers, body, 5), now=now) == FailureClass.RATE_LIMITED


@pytest.mark.django_db
def test_a_refusal_of_a_valid_post_is_rejected(bluesky, locations, pds):
    pds.fail("com.atproto.repo.createRecord", xrpc_error(400, "InvalidRequest", "Input/record is invalid"))
    run = run_once(make_probe(bluesky, "post", locations), locations[0])
    assert run.failure_class == FailureClass.REJECTED
    assert run.evidence["platform_error"] == "InvalidRequest"


@pytest.mark.django_db
def test_a_server_error_on_a_read_is_a_server_error(bluesky, locations, pds):
    pds.fail("app.bsky.feed.getTimeline", xrpc_error(500, "InternalServerError", "Internal Server Error"))
    run = run_once(make_probe(bluesky, "read", locations), locations[0])
    assert run.failure_class == FailureClass.SERVER_ERROR


@pytest.mark.django_db
def test_a_write_refused_with_503_while_reads_work_is_read_only(bluesky, locations, pds):
    pds.fail("com.atproto.repo.createRecord", xrpc_error(503, "NotEnoughResources", "Not enough resources"))
    run = run_once(make_probe(bluesky, "post", locations), locations[0])
    assert run.failure_class == FailureClass.READ_ONLY
    assert step_names(run)[-1] == "diagnostic read" and run.steps[-1]["ok"]


@pytest.mark.django_db
def test_a_failed_undo_is_retried_later_with_the_kept_session(bluesky, locations, pds):
    pds.fail("com.atproto.repo.deleteRecord", xrpc_error(500, "InternalServerError", "Internal Server Error"))
    run = run_once(make_probe(bluesky, "post", locations), locations[0])
    assert run.outcome == Outcome.SUCCESS and run.cleanup == Run.Cleanup.PENDING
    assert len(pds.left_by(PROBER[1])) == 1
    Artifact.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1),
                            created_at=timezone.now() - timedelta(minutes=5))
    pds.expire_access_tokens()  # and the retry must refresh, and keep, the session
    assert cleanup_pending() == 1
    assert pds.left_by(PROBER[1]) == []
    assert pds.count("com.atproto.server.createSession") == 1
    assert json.loads(prober().session)["accessJwt"] in pds.access


# --- secrets -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_app_password_and_the_tokens_are_never_stored_with_runs(bluesky, locations, pds, caplog):
    caplog.set_level(logging.DEBUG)
    probes = {action: make_probe(bluesky, action, locations) for action in ("post", "repost", "follow", "dm", "read",
                                                                            "limits")}
    for probe in probes.values():
        run_once(probe, locations[0])

    def echo(request):  # a platform that quotes the token it was given in its error text
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return xrpc_error(400, "InvalidRequest", f"bad request with token {token}")

    # The kept session's token quoted back, then (after a refused refresh) a new session's.
    pds.fail("com.atproto.repo.deleteRecord", echo)
    kept = run_once(probes["post"], locations[0])
    pds.expire_access_tokens()
    pds.fail("com.atproto.server.refreshSession", xrpc_error(401, "InvalidToken", "Token could not be verified"))
    pds.fail("com.atproto.repo.deleteRecord", echo)
    renewed = run_once(probes["post"], locations[0])
    assert [kept.cleanup, renewed.cleanup] == [Run.Cleanup.PENDING, Run.Cleanup.PENDING]
    assert "log in (prober)" in step_names(renewed)
    Account.objects.filter(role="prober").update(token="wrong-wrong-wrong-wrong", session="")
    assert run_once(probes["read"], locations[0]).failure_class == FailureClass.AUTH

    assert len(pds.issued) >= 6 and Run.objects.count() == 9
    stored = stored_text() + caplog.text
    for secret in [PROBER[2], PARTNER[2], "wrong-wrong-wrong-wrong", *pds.issued]:
        assert secret not in stored
    errors = list(Artifact.objects.exclude(last_error="").values_list("last_error", flat=True))
    assert len(errors) == 2 and all("with token [redacted]" in e for e in errors)


# --- limits and registry -----------------------------------------------------------------------

def test_the_registry_knows_bluesky():
    assert adapter_class("bluesky") is BlueskyAdapter


@pytest.mark.django_db
def test_own_writes_are_counted_in_points(bluesky):
    probe = make_probe(bluesky, "post", [])
    account = prober()
    now = timezone.now()
    for n in range(5):
        Artifact.objects.create(run_key=uuid.uuid4(), probe=probe, account=account, kind=Artifact.Kind.STATUS,
                                remote_id=f"at://{PROBER[1]}/app.bsky.feed.post/{n}",
                                cleaned_at=now if n < 3 else None)
    usage = {rule.family: used for rule, used in own_usage(account, BlueskyAdapter.write_limits, now)}
    assert usage == {"hourly points": 5 * 3 + 3 * 1, "daily points": 5 * 3 + 3 * 1}


def test_a_schedule_over_the_hourly_points_is_refused():
    fast = [{"slug": "bsky-post", "action": "post", "interval": 5, "locations": ["sacramento", "atlanta"]}]
    slow = [{"slug": "bsky-post", "action": "post", "interval": 60, "locations": ["sacramento", "atlanta"]}]
    assert any("hourly points" in p for p in schedule_problems("bluesky", fast))
    assert schedule_problems("bluesky", slow) == []
