"""Bluesky / AT Protocol adapter over XRPC: a kept session, repository records, the chat service.

The hosted service allows few logins (createSession: 30 per 5 min, 300 per day per account), so a
session is made once, kept encrypted in Account.session (via the `learnt_sessions` fact the runner
saves), refreshed with refreshSession when the access token expires, and only when the refresh is
refused made again with the app password (Account.token). Posts, reposts and follows are records
in the account's repository, undone with deleteRecord; direct messages go through the chat service
(`atproto-proxy` header), whose only cleanup hides a message for its sender.

Failure classes come from the HTTP status, the XRPC error name (`{"error": <Name>, "message": …}`)
and the RateLimit-* headers, never from the message text.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any
from urllib.parse import urlencode

from platforms.adapters.base import (
    QUOTA_RESET_AFTER, BaseAdapter, CreatedArtifact, WriteLimit, needs_diagnostic, refusal_class, reset_is_far,
    token_refused,
)
from platforms.errors import ProbeError
from platforms.http import HttpResult
from platforms.vocabulary import Action, Artifact, FailureClass

CHAT_PROXY = {"atproto-proxy": "did:web:api.bsky.chat#bsky_chat"}
POST = "app.bsky.feed.post"
REPOST = "app.bsky.feed.repost"
FOLLOW = "app.bsky.graph.follow"
COLLECTIONS = {Artifact.Kind.STATUS: POST, Artifact.Kind.REBLOG: REPOST, Artifact.Kind.FOLLOW: FOLLOW}
# app.bsky.feed.post: text maxGraphemes 300 (maxLength 3000 bytes).
MAX_GRAPHEMES = 300
# Error names that say the account or its credentials are refused, whatever the status.
AUTH_ERRORS = frozenset({
    "AuthenticationRequired", "InvalidToken", "ExpiredToken", "AccountTakedown", "AccountDeactivated",
    "AccountSuspended", "AuthFactorTokenRequired",
})
# After a login refused with the stored app password, no new try with the same one for this long:
# every run retrying would spend the day's 300 logins, and the account could not log in even once
# the password is fixed. A new app password is tried at once.
LOGIN_RETRY_AFTER = timedelta(minutes=15)
CLEANUP_NOTE = ("Bluesky chat has no delete-for-everyone: cleanup (chat.bsky.convo.deleteMessageForSelf) hides "
                "the message for the prober only; the partner test account keeps its copy.")


def error_name(result: HttpResult) -> str:
    """The XRPC error name of a response (`InvalidRequest`, `ExpiredToken`…), or ""."""
    try:
        data = json.loads(result.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ""
    name = data.get("error") if isinstance(data, dict) else None
    return name[:100] if isinstance(name, str) else ""


def classify(result: HttpResult, *, now: datetime | None = None) -> str | None:
    """The failure class a response alone shows, or None for success. A 403 or 50x to a write
    needs a diagnostic read to tell refusal from lock-out and read-only from down: see `_refusal`."""
    status = result.status
    if 200 <= status < 300:
        return None
    name = error_name(result)
    if token_refused(result) or name in AUTH_ERRORS:
        return FailureClass.AUTH
    if status == 429 or name == "RateLimitExceeded":
        return FailureClass.QUOTA_EXCEEDED if _allowance_exhausted(result, now) else FailureClass.RATE_LIMITED
    if 300 <= status < 400:
        return FailureClass.UNEXPECTED
    if status >= 500:
        return FailureClass.SERVER_ERROR
    return FailureClass.REJECTED


def _allowance_exhausted(result: HttpResult, now: datetime | None) -> bool:
    if reset_is_far(result, "ratelimit-reset", now):  # in Unix seconds
        return True
    # RateLimit-Policy: "<limit>;w=<seconds>" names the limit that was hit: a daily one is a quota
    # even when its window happens to end soon.
    for part in result.headers.get("ratelimit-policy", "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key == "w" and value.isdigit():
            return int(value) > QUOTA_RESET_AFTER.total_seconds()
    return False


def _fingerprint(username: str, password: str) -> str:
    """Which credentials a kept session was made with: a new app password discards it."""
    return hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()[:16]


def _uri_parts(uri: str) -> tuple[str, str, str]:
    """at://<repo>/<collection>/<rkey> → (repo, collection, rkey); ValueError if not that shape."""
    if not uri.startswith("at://"):
        raise ValueError(uri)
    parts = uri[len("at://"):].split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(uri)
    return parts[0], parts[1], parts[2]


def _now_iso() -> str:
    return datetime.now(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Repository writes cost points, per account (DID): 3 a create, 1 a delete; 5,000 an hour and
# 35,000 a day (packages/pds/src/rate-limits.ts). Chat messages are not repository writes.
REPO_KINDS = (Artifact.Kind.STATUS, Artifact.Kind.REBLOG, Artifact.Kind.FOLLOW)
BLUESKY_WRITE_LIMITS = (
    WriteLimit("hourly points", 5_000, timedelta(hours=1), REPO_KINDS, "points", (3, 1)),
    WriteLimit("daily points", 35_000, timedelta(hours=24), REPO_KINDS, "points", (3, 1)),
)
_CREATE_AND_DELETE = {"hourly points": 4, "daily points": 4}
BLUESKY_WRITES_PER_RUN = {
    Action.POST: {"prober": _CREATE_AND_DELETE},
    Action.REPOST: {"prober": _CREATE_AND_DELETE},
    Action.FOLLOW: {"prober": _CREATE_AND_DELETE},
    # The refused over-long post still costs its 3 points: the PDS counts before it validates.
    Action.LIMITS: {"prober": {"hourly points": 3, "daily points": 3}},
}


class BlueskyAdapter(BaseAdapter):
    kind = "bluesky"
    actions = frozenset({Action.POST, Action.REPOST, Action.FOLLOW, Action.DM, Action.READ, Action.LIMITS})
    write_limits = BLUESKY_WRITE_LIMITS
    writes_per_run = BLUESKY_WRITES_PER_RUN

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sessions: dict[str, dict[str, str]] = {}
        self._logged_in: set[str] = set()
        self._refused_at: dict[str, datetime] = {}
        for creds in (self.prober, self.partner):
            if creds is not None and creds.session:
                session = self._parse_kept(creds.username, creds.token, creds.session)
                if session and "accessJwt" in session:
                    self._sessions[creds.role] = session
                    self._hide(session)
                elif session:
                    self._refused_at[creds.role] = datetime.fromisoformat(session["login_refused_at"])

    # --- actions ---------------------------------------------------------------------------
    def action_post(self) -> None:
        uri, _ = self._create_record("create post", "prober", POST, {"text": self._text("post")},
                                     kind=Artifact.Kind.STATUS)
        repo, collection, rkey = _uri_parts(uri)
        read = self._xrpc("read back", "GET", "com.atproto.repo.getRecord", role="prober",
                          params={"repo": repo, "collection": collection, "rkey": rkey})
        if read.status in (400, 404) and error_name(read) in ("RecordNotFound", ""):
            raise ProbeError(FailureClass.INVARIANT, "the post was accepted but cannot be read back", result=read)
        self._expect_json(read, write=False)

    def action_repost(self) -> None:
        # The prober reposts the partner's long-lived target post (made once, kept), so reposting
        # is tested on someone else's post without posting anything.
        target = self._repost_target(self.account("partner"))
        self._create_record("repost", "prober", REPOST, {"subject": target}, kind=Artifact.Kind.REBLOG)

    def action_follow(self) -> None:
        self._create_record("follow", "prober", FOLLOW, {"subject": self._did("partner")}, kind=Artifact.Kind.FOLLOW)

    def action_dm(self) -> None:
        partner_did = self._did("partner")
        result = self._xrpc("open conversation", "GET", "chat.bsky.convo.getConvoForMembers", role="prober",
                            params={"members": partner_did}, chat=True)
        convo = self._expect_json(result, write=False).get("convo")
        convo_id = convo.get("id") if isinstance(convo, dict) else None
        if not isinstance(convo_id, str) or not convo_id:
            raise ProbeError(FailureClass.UNEXPECTED, "getConvoForMembers answered without a conversation id",
                             result=result)
        result = self._xrpc("send", "POST", "chat.bsky.convo.sendMessage", role="prober", chat=True,
                            body={"convoId": convo_id, "message": {"text": self._text("direct message")}})
        message_id = self._expect_json(result, write=True).get("id")
        if not isinstance(message_id, str) or not message_id:
            raise ProbeError(FailureClass.UNEXPECTED, "sendMessage answered without a message id", result=result)
        self.ctx.record_artifact(CreatedArtifact(Artifact.Kind.DIRECT_MESSAGE, f"{convo_id}/{message_id}", "prober"))
        self.ctx.facts["cleanup_note"] = CLEANUP_NOTE
        result = self._xrpc("recipient reads", "GET", "chat.bsky.convo.getMessages", role="partner", chat=True,
                            params={"convoId": convo_id, "limit": 50})
        messages = self._expect_json(result, write=False).get("messages")
        if not isinstance(messages, list):
            raise ProbeError(FailureClass.UNEXPECTED, "getMessages answered without messages", result=result)
        if not any(isinstance(m, dict) and m.get("id") == message_id for m in messages):
            raise ProbeError(FailureClass.INVARIANT, "the message was accepted but the recipient cannot see it",
                             result=result)

    def action_read(self) -> None:
        result = self._xrpc("home timeline", "GET", "app.bsky.feed.getTimeline", role="prober", params={"limit": 20})
        if not isinstance(self._expect_json(result, write=False).get("feed"), list):
            raise ProbeError(FailureClass.UNEXPECTED, "getTimeline answered without a feed", result=result)

    def action_limits(self) -> None:
        self.ctx.facts["max_graphemes"] = MAX_GRAPHEMES
        # ASCII: one character is one grapheme and one byte, so only the grapheme limit is crossed.
        text = ("Vigie limit check " * (MAX_GRAPHEMES // 18 + 2))[: MAX_GRAPHEMES + 1]
        did = self._did("prober")
        # validate: true, so that a PDS cannot skip the lexicon check it should make.
        result = self._xrpc("over-long post", "POST", "com.atproto.repo.createRecord", role="prober", body={
            "repo": did, "collection": POST, "validate": True,
            "record": {"$type": POST, "text": text, "createdAt": _now_iso()},
        })
        if 200 <= result.status < 300:
            uri = self._expect_json(result, write=True).get("uri")
            if isinstance(uri, str) and uri:
                self.ctx.record_artifact(CreatedArtifact(Artifact.Kind.STATUS, uri, "prober"))
            raise ProbeError(FailureClass.INVARIANT, f"a post of {MAX_GRAPHEMES + 1} graphemes was accepted over "
                             f"the limit of {MAX_GRAPHEMES}", result=result)
        if result.status == 400 and error_name(result) == "InvalidRequest":
            self.ctx.facts["refused_with"] = "400 InvalidRequest"
            return
        # Refused for another reason (quota, rate limit, read-only): nothing was published, the
        # limit held though untested; the evidence says so and the posting probe reports the refusal.
        try:
            self._expect(result, write=True)
        except ProbeError as exc:
            if exc.failure_class in (FailureClass.QUOTA_EXCEEDED, FailureClass.RATE_LIMITED,
                                     FailureClass.READ_ONLY, FailureClass.REJECTED):
                self.ctx.facts["limit_untested"] = (f"the over-long post was refused with {result.status} "
                                                    f"{error_name(result) or ''} ({exc.failure_class}) before "
                                                    "its length was checked").replace("  ", " ")
                return
            raise
        raise ProbeError(FailureClass.UNEXPECTED, f"an over-long post answered {result.status}", result=result)

    # --- cleanup -----------------------------------------------------------------------------
    def undo(self, artifact: CreatedArtifact) -> None:
        if artifact.kind == Artifact.Kind.DIRECT_MESSAGE:
            convo_id, _, message_id = artifact.remote_id.partition("/")
            result = self._xrpc("hide message", "POST", "chat.bsky.convo.deleteMessageForSelf", role=artifact.role,
                                chat=True, body={"convoId": convo_id, "messageId": message_id})
        elif artifact.kind in COLLECTIONS:
            try:
                repo, collection, rkey = _uri_parts(artifact.remote_id)
            except ValueError:
                raise ProbeError(FailureClass.UNEXPECTED, f"cannot undo {artifact.kind}: not an at:// uri",
                                 permanent=True) from None
            result = self._xrpc("delete record", "POST", "com.atproto.repo.deleteRecord", role=artifact.role,
                                body={"repo": repo, "collection": collection, "rkey": rkey})
        else:
            raise ProbeError(FailureClass.UNEXPECTED, f"cannot undo a {artifact.kind}", permanent=True)
        # deleteRecord of a record already gone is a no-op success on the PDS: undo is idempotent.
        self._expect(result, write=True)

    # --- records -----------------------------------------------------------------------------
    def _create_record(self, step: str, role: str, collection: str, fields: dict[str, Any], *,
                       kind: str | None) -> tuple[str, str]:
        """createRecord in the account's own repository; records the artifact (unless kind is None,
        for a kept record) as soon as its uri is known. Returns (uri, cid)."""
        did = self._did(role)
        result = self._xrpc(step, "POST", "com.atproto.repo.createRecord", role=role, body={
            "repo": did, "collection": collection, "record": {"$type": collection, **fields, "createdAt": _now_iso()},
        })
        data = self._expect_json(result, write=True)
        uri, cid = data.get("uri"), data.get("cid")
        try:
            _, uri_collection, _ = _uri_parts(uri if isinstance(uri, str) else "")
        except ValueError:
            raise ProbeError(FailureClass.UNEXPECTED, f"{step}: createRecord answered without an at:// uri",
                             result=result) from None
        if kind is not None:
            self.ctx.record_artifact(CreatedArtifact(kind, uri, role))
        if uri_collection != collection or not isinstance(cid, str) or not cid:
            raise ProbeError(FailureClass.UNEXPECTED, f"{step}: createRecord answered {uri_collection!r} "
                             "without a cid", result=result)
        if result.rate_limit():
            self.ctx.facts["rate_limit"] = result.rate_limit()
        return uri, cid

    def _repost_target(self, partner) -> dict[str, str]:
        """The partner's kept post as a strong reference {uri, cid}; made again if it is gone. The
        PDS accepts a repost of a post that does not exist, so the target is read first."""
        if partner.fixture_id:
            try:
                repo, collection, rkey = _uri_parts(partner.fixture_id)
            except ValueError:
                repo = ""
            if repo:
                result = self._xrpc("repost target", "GET", "com.atproto.repo.getRecord", role="prober",
                                    params={"repo": repo, "collection": collection, "rkey": rkey})
                if not (result.status in (400, 404) and error_name(result) in ("RecordNotFound", "")):
                    data = self._expect_json(result, write=False)
                    if isinstance(data.get("cid"), str) and data["cid"]:
                        return {"uri": partner.fixture_id, "cid": data["cid"]}
                    raise ProbeError(FailureClass.UNEXPECTED, "the repost target has no cid", result=result)
        text = ("Vigie availability probe: the test account's repost target. Probes repost and un-repost "
                "this post; it stays so that reposting can be tested without posting.")
        uri, cid = self._create_record("make repost target", partner.role, POST, {"text": text}, kind=None)
        partner.fixture_id = uri
        self.ctx.facts.setdefault("learnt_fixture_ids", {})[partner.role] = uri
        return {"uri": uri, "cid": cid}

    def _did(self, role: str) -> str:
        """The account's DID: known, from its session, or (the partner, without logging in as it)
        resolved from its handle."""
        account = self.account(role)
        if not account.remote_id:
            if role == "prober" or role in self._sessions:
                did = self._session(role)["did"]
            else:
                result = self._xrpc(f"resolve handle ({role})", "GET", "com.atproto.identity.resolveHandle",
                                    role=None, params={"handle": account.username})
                did = self._expect_json(result, write=False).get("did")
                if not isinstance(did, str) or not did.startswith("did:"):
                    raise ProbeError(FailureClass.UNEXPECTED, "resolveHandle answered without a DID", result=result)
            self._learn_did(role, did)
        return account.remote_id

    def _learn_did(self, role: str, did: str) -> None:
        account = self.account(role)
        if account.remote_id != did:
            account.remote_id = did
            self.ctx.facts.setdefault("learnt_remote_ids", {})[role] = did

    # --- session -----------------------------------------------------------------------------
    def _xrpc(self, step: str, method: str, nsid: str, *, role: str | None, params: dict | None = None,
              body: dict | None = None, chat: bool = False) -> HttpResult:
        """One XRPC call as `role` (None: unauthenticated). An expired access token is refreshed
        (or, if the refresh is refused, the account logs in again) and the call made once more."""
        url = self.url(f"/xrpc/{nsid}") + (f"?{urlencode(params)}" if params else "")
        headers = dict(CHAT_PROXY) if chat else None
        if role is None:
            return self.ctx.call(step, method, url, json_body=body, headers=headers)
        result = self.ctx.call(step, method, url, token=self._session(role)["accessJwt"], json_body=body,
                               headers=headers)
        if error_name(result) == "ExpiredToken" and role not in self._logged_in:
            self._renew(role)
            result = self.ctx.call(step, method, url, token=self._session(role)["accessJwt"], json_body=body,
                                   headers=headers)
        return result

    def _session(self, role: str) -> dict[str, str]:
        return self._sessions.get(role) or self._login(role)

    def _renew(self, role: str) -> None:
        result = self.ctx.call(f"refresh session ({role})", "POST", self.url("/xrpc/com.atproto.server.refreshSession"),
                               token=self._sessions[role]["refreshJwt"])
        if 200 <= result.status < 300:
            self._keep(role, result)
            return
        failure = classify(result)
        # Throttled, or the service is down: a login would fail the same way and spend one of the
        # few allowed a day. Only a refused refresh token is worth a login.
        if failure in (FailureClass.RATE_LIMITED, FailureClass.QUOTA_EXCEEDED, FailureClass.SERVER_ERROR,
                       FailureClass.UNEXPECTED):
            self._expect(result, write=False)
        self._sessions.pop(role, None)
        self._login(role)

    def _login(self, role: str) -> dict[str, str]:
        account = self.account(role)
        refused_at = self._refused_at.get(role)
        if refused_at is not None and datetime.now(dt_timezone.utc) - refused_at < LOGIN_RETRY_AFTER:
            retry = (refused_at + LOGIN_RETRY_AFTER).strftime("%H:%M UTC")
            raise ProbeError(FailureClass.AUTH, f"the {role} account's app password was refused at "
                             f"{refused_at:%H:%M UTC}; not tried again before {retry} (or until it changes)",
                             permanent=True)
        self._logged_in.add(role)  # never twice in a run: the platform allows few logins a day
        result = self.ctx.call(f"log in ({role})", "POST", self.url("/xrpc/com.atproto.server.createSession"),
                               json_body={"identifier": account.username, "password": account.token})
        if classify(result) == FailureClass.AUTH:
            account.session = json.dumps({"made_with": _fingerprint(account.username, account.token),
                                          "login_refused_at": datetime.now(dt_timezone.utc).isoformat()})
            self.ctx.facts.setdefault("learnt_sessions", {})[role] = account.session
        self._expect(result, write=False)
        return self._keep(role, result)

    def _keep(self, role: str, result: HttpResult) -> dict[str, str]:
        """Take the session from a createSession or refreshSession answer, and have it saved."""
        data = self._expect_json(result, write=False)
        session = {key: data.get(key) for key in ("accessJwt", "refreshJwt", "did", "handle")}
        if not all(isinstance(session[key], str) and session[key] for key in ("accessJwt", "refreshJwt", "did")):
            raise ProbeError(FailureClass.UNEXPECTED, f"{result.path} answered without a session", result=result)
        account = self.account(role)
        session["made_with"] = _fingerprint(account.username, account.token)
        self._hide(session)
        self._sessions[role] = session
        self._learn_did(role, session["did"])
        account.session = json.dumps(session)
        self.ctx.facts.setdefault("learnt_sessions", {})[role] = account.session
        return session

    def _hide(self, session: dict[str, str]) -> None:
        # The seam's secrets are the runner's list too: whatever quotes a token is redacted in
        # steps, errors and evidence.
        for key in ("accessJwt", "refreshJwt"):
            if session.get(key) and session[key] not in self.ctx.http.secrets:
                self.ctx.http.secrets.append(session[key])

    @staticmethod
    def _parse_kept(username: str, password: str, raw: str) -> dict[str, str] | None:
        """The kept session, or the record of a refused login, if made with these credentials."""
        try:
            session = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(session, dict) or session.get("made_with") != _fingerprint(username, password):
            return None
        if isinstance(session.get("login_refused_at"), str):
            try:
                when = datetime.fromisoformat(session["login_refused_at"])
            except ValueError:
                return None
            return session if when.tzinfo is not None else None
        if not all(isinstance(session.get(key), str) and session[key] for key in ("accessJwt", "refreshJwt", "did")):
            return None
        return session

    # --- classification ------------------------------------------------------------------------
    def _expect_json(self, result: HttpResult, *, write: bool) -> dict[str, Any]:
        self._expect(result, write=write)
        data = result.json()
        if not isinstance(data, dict):
            raise ProbeError(FailureClass.UNEXPECTED, f"{result.method} {result.path} answered a JSON "
                             f"{type(data).__name__}, expected an object", result=result)
        return data

    def _expect(self, result: HttpResult, *, write: bool) -> None:
        failure = classify(result)
        if failure is None:
            return
        if needs_diagnostic(result, write=write) and failure != FailureClass.AUTH:
            failure = self._refusal(result)
        name = error_name(result)
        try:
            message = result.json().get("message", "")
        except (ProbeError, AttributeError):
            message = ""
        text = self.ctx.http.redact(f"{name}: {message}" if name and isinstance(message, str) and message
                                    else result.error_text(limit=2000))[:300]
        raise ProbeError(failure, f"{result.method} {result.path} answered {result.status}: {text}", result=result,
                         permanent=failure in (FailureClass.AUTH, FailureClass.REJECTED))

    def _refusal(self, result: HttpResult) -> str:
        """A write refused with 403 or 50x: an authenticated read tells what kind of refusal it is
        (read-only or down; a refused action or a locked-out account)."""
        try:
            probe = self._xrpc("diagnostic read", "GET", "com.atproto.server.getSession", role="prober")
        except ProbeError:
            return refusal_class(result, reads_work=None)
        return refusal_class(result, reads_work=200 <= probe.status < 300)

    def _text(self, what: str) -> str:
        return f"Vigie availability probe ({what}) {self.ctx.run_key[:8]}: this is automated and removed at once."
