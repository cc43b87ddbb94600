"""X (Twitter) API v2 adapter: post, repost, follow, DM, home timeline and the character limit.

Auth is an OAuth 2.0 user-context bearer token (`Account.token`); each account's numeric id is
learnt once from `GET /2/users/me` and kept in `Account.remote_id`.

Failure classes come from the HTTP status, X's error identifiers and the rate-limit headers, never
from the error text (X rewords it: "Tweet" became "Post"). Two error dialects exist:

- problem+json (v2): `{"type", "title", "detail", "status"}`, also inside `errors[]` of a 2xx
  (partial errors). Matched on the *path* of `type` (`…/2/problems/usage-capped`): the host moved
  from api.twitter.com to api.x.com and the labs prefix (`/labs/2/problems/…`) still appears.
- legacy v1.1: `{"errors": [{"code", "message"}]}`, codes from X's own table (xdevplatform/docs
  `x-api/fundamentals/response-codes-and-errors.mdx`, commit 6e3e6fc5):

| code / type | X says (HTTP) | class | why |
|---|---|---|---|
| 88 | Rate limit exceeded (429) | `rate_limited` | a short request window; `quota_exceeded` when its reset is over an hour away or a 24-hour allowance header reads 0, as for any 429 |
| 185 | User is over daily status update limit (403) | `quota_exceeded` | the February 2023 outage's signature: an allowance ("roaming windows of unspecified duration") refused, not throttling |
| 161 | You are unable to follow more people at this time (403) | `quota_exceeded` | the follow allowance (the Feb-2023 follow message); retrying in minutes does not help |
| 186 | Post needs to be a bit shorter (403) | `rejected` | our input refused; in the `limits` action it is the refusal we want (success) |
| 187 | Status is a duplicate (403) | `rejected` | every probe text carries the run key, so only the platform can be wrong; the input was refused |
| 226 | This request looks like it might be automated (403) | `rejected` | anti-spam refused this action while the account still works: not an outage of the action, not a token problem |
| 327 | You have already reposted this Post (403) | `rejected` | a leftover repost (its cleanup still pending); the repost is recorded so cleanup removes it |
| 349 | You cannot send messages to this user (403) | `rejected` | the partner account's DM settings: a test-account configuration problem |
| 354 | Direct message over the max character limit (403) | `rejected` | our input refused |
| 261 | Your App cannot perform write actions (403) | `auth` | X restricted *our app's* write permission: a credential problem for a person to fix, not evidence that the platform is read-only (that is a 50x to writes while reads work) |
| 326 | This account is temporarily locked (403) | `auth` | the prober account cannot act until a person unlocks it |
| 32, 135, 89 | Could not authenticate you / Invalid or expired token | `auth` | the token |
| 130, 131 | Over capacity (503), Internal error (500) | `server_error` | the platform |
| `usage-capped` | UsageCapExceeded, Daily/Monthly (429) | `quota_exceeded` | the plan's allowance is spent |
| `rate-limit-exceeded` | (429) | `rate_limited` | as code 88 |
| `client-forbidden`, `unsupported-authentication` | app not enrolled / wrong token type (403) | `auth` | our credentials or app set-up |
| `not-authorized-for-resource`, `disallowed-resource`, `resource-not-found`, `invalid-request` | (403, 404, 400) | `rejected` | this request refused |
| none (`about:blank`) | by status: 401 `auth`; 429 as code 88; 403 and 502/503/504 to a write are explained by a diagnostic read (`GET /2/users/me`) as for Mastodon: 403 `rejected` if reads work else `auth`, 50x `read_only` if reads work else `server_error`; other 5xx `server_error`; other 4xx `rejected`; 3xx `unexpected` | | |

DM cleanup: `DELETE /2/dm_events/:id` removes a message "if owned by the authenticated user"; X
has no delete-for-everyone, and its v1.1 documentation says a deleted DM disappears only for the
account that deletes it. The ledger marks a DM cleaned once the sender's copy is deleted, and the
run's evidence says that the partner (a Vigie test account) keeps its copy.

The `limits` action posts 281 characters: it assumes the prober is not an X Premium account
(whose limit is 25,000). OAuth 2.0 user tokens expire after two hours unless refreshed; Vigie
does not refresh them, so an expired token shows as `auth`.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from platforms.adapters.base import (
    BaseAdapter, CreatedArtifact, Credentials, WriteLimit, needs_diagnostic, refusal_class, reset_is_far, token_refused,
)
from platforms.errors import ProbeError
from platforms.http import HttpResult
from platforms.vocabulary import Action, Artifact, FailureClass

# The weighted limit of a post by an account without X Premium (twitter-text: 280, ASCII weighs 1).
MAX_CHARACTERS = 280

LEGACY_CODES: dict[int, str] = {
    88: FailureClass.RATE_LIMITED,
    185: FailureClass.QUOTA_EXCEEDED,
    161: FailureClass.QUOTA_EXCEEDED,
    186: FailureClass.REJECTED,
    187: FailureClass.REJECTED,
    226: FailureClass.REJECTED,
    327: FailureClass.REJECTED,
    349: FailureClass.REJECTED,
    354: FailureClass.REJECTED,
    261: FailureClass.AUTH,
    326: FailureClass.AUTH,
    32: FailureClass.AUTH,
    135: FailureClass.AUTH,
    89: FailureClass.AUTH,
    130: FailureClass.SERVER_ERROR,
    131: FailureClass.SERVER_ERROR,
}
PROBLEM_TYPES: dict[str, str] = {
    "usage-capped": FailureClass.QUOTA_EXCEEDED,
    "rate-limit-exceeded": FailureClass.RATE_LIMITED,
    "client-forbidden": FailureClass.AUTH,
    "unsupported-authentication": FailureClass.AUTH,
    "not-authorized-for-resource": FailureClass.REJECTED,
    "disallowed-resource": FailureClass.REJECTED,
    "resource-not-found": FailureClass.REJECTED,
    "invalid-request": FailureClass.REJECTED,
}
# When one answer carries several identifiers, the most telling wins.
_PRECEDENCE = (FailureClass.QUOTA_EXCEEDED, FailureClass.AUTH, FailureClass.RATE_LIMITED,
               FailureClass.SERVER_ERROR, FailureClass.REJECTED)
_PROBLEM_PATH = re.compile(r"/problems/([a-z0-9-]+)/?$")


def platform_errors(result: HttpResult) -> tuple[list[int], list[str]]:
    """X's error identifiers in a response: legacy `errors[].code` and problem type names (the last
    segment of the `type` URL's path, from the body and from `errors[]`)."""
    try:
        data = result.json()
    except ProbeError:
        return [], []
    if not isinstance(data, dict):
        return [], []
    errors = data.get("errors")
    items = [data] + ([e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [])
    codes: list[int] = []
    types: list[str] = []
    for item in items:
        code = item.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and code not in codes:
            codes.append(code)
        kind = item.get("type")
        if isinstance(kind, str):
            match = _PROBLEM_PATH.search(urlsplit(kind).path)
            if match and match.group(1) not in types:
                types.append(match.group(1))
    return codes, types


def classify_identifiers(codes: list[int], types: list[str]) -> str | None:
    """The class X's identifiers name, or None when none of them is known."""
    found = {LEGACY_CODES[c] for c in codes if c in LEGACY_CODES}
    found |= {PROBLEM_TYPES[t] for t in types if t in PROBLEM_TYPES}
    return next((c for c in _PRECEDENCE if c in found), None)


def classify(result: HttpResult, *, now: datetime | None = None) -> str | None:
    """The failure class a response alone shows, or None for a 2xx. An uncoded 403 and a 502/503/504
    to a write need a diagnostic read to be told apart: see `XAdapter._refusal`."""
    status = result.status
    if 200 <= status < 300:
        return None
    codes, types = platform_errors(result)
    failure = classify_identifiers(codes, types)
    if failure == FailureClass.RATE_LIMITED or (failure is None and status == 429):
        return FailureClass.QUOTA_EXCEEDED if _allowance_spent(result, now) else FailureClass.RATE_LIMITED
    if failure is not None:
        return failure
    if token_refused(result):
        return FailureClass.AUTH
    if 300 <= status < 400:
        return FailureClass.UNEXPECTED
    if status >= 500:
        return FailureClass.SERVER_ERROR
    return FailureClass.REJECTED


def _allowance_spent(result: HttpResult, now: datetime | None) -> bool:
    """A 24-hour allowance header at 0, or a window that resets more than an hour away."""
    for name in ("x-user-limit-24hour-remaining", "x-app-limit-24hour-remaining"):
        if result.headers.get(name, "").strip() == "0":
            return True
    return reset_is_far(result, "x-rate-limit-reset", now)


K = Artifact.Kind
# X's documented per-user limits (x-api/fundamentals/rate-limits.mdx), counted from the ledger.
# They limit requests: a refused post counts too, which the ledger cannot see; the schedule check
# (writes_per_run) counts it. The per-app 10,000 posts/24 h is shared by every user of the app
# and is not an account budget.
X_WRITE_LIMITS = (
    WriteLimit("posts", 100, timedelta(minutes=15), (K.STATUS,), "created"),
    WriteLimit("post deletes", 50, timedelta(minutes=15), (K.STATUS,), "cleaned"),
    WriteLimit("reposts", 50, timedelta(minutes=15), (K.REBLOG,), "created"),
    WriteLimit("repost undos", 50, timedelta(minutes=15), (K.REBLOG,), "cleaned"),
    WriteLimit("follows", 50, timedelta(minutes=15), (K.FOLLOW,), "created"),
    WriteLimit("unfollows", 50, timedelta(minutes=15), (K.FOLLOW,), "cleaned"),
    WriteLimit("DMs", 15, timedelta(minutes=15), (K.DIRECT_MESSAGE,), "created"),
    WriteLimit("DMs per day", 1440, timedelta(hours=24), (K.DIRECT_MESSAGE,), "created"),
    WriteLimit("DM deletes", 300, timedelta(minutes=15), (K.DIRECT_MESSAGE,), "cleaned"),
    WriteLimit("DM deletes per day", 1500, timedelta(hours=24), (K.DIRECT_MESSAGE,), "cleaned"),
)
X_WRITES_PER_RUN = {
    Action.POST: {"prober": {"posts": 1, "post deletes": 1}},
    Action.REPOST: {"prober": {"reposts": 1, "repost undos": 1}},
    Action.FOLLOW: {"prober": {"follows": 1, "unfollows": 1}},
    Action.DM: {"prober": {"DMs": 1, "DMs per day": 1, "DM deletes": 1, "DM deletes per day": 1}},
    # The over-long post is refused, but the request still counts against the posting limit.
    Action.LIMITS: {"prober": {"posts": 1}},
}
DM_CLEANUP_NOTE = ("deleted for the sender only: X's API deletes a DM event for the account that owns it and "
                   "has no delete-for-everyone, so the partner test account keeps its copy")


class XAdapter(BaseAdapter):
    kind = "x"
    actions = frozenset({Action.POST, Action.REPOST, Action.FOLLOW, Action.DM, Action.READ, Action.LIMITS})
    write_limits = X_WRITE_LIMITS
    writes_per_run = X_WRITES_PER_RUN
    max_characters = MAX_CHARACTERS

    # --- actions ---------------------------------------------------------------------------
    def action_post(self) -> None:
        data = self._create_post("create post", self.prober, self._text("post"))
        self.ctx.record_artifact(CreatedArtifact(K.STATUS, data["id"], "prober"))
        read = self._call("read back", "GET", f"/2/tweets/{data['id']}", self.prober)
        # X answers a lookup of a missing post with 200 and only `errors` (or with a 404).
        if read.status == 404 or self._gone(read):
            raise ProbeError(FailureClass.INVARIANT, "the post was accepted but cannot be read back", result=read)
        got = self._expect_data(read, write=False)
        if got.get("id") != data["id"]:
            raise ProbeError(FailureClass.INVARIANT, "reading the post back answered another post", result=read)

    def action_repost(self) -> None:
        # The prober reposts the partner's long-lived target post (made once, kept): reposting is
        # tested without posting, so a posting outage does not show as a reposting one.
        partner = self.account("partner")
        prober_id = self._remote_id("prober")
        target_id = partner.fixture_id or self._make_repost_target(partner)
        result = self._call("repost", "POST", f"/2/users/{prober_id}/retweets", self.prober,
                            json_body={"tweet_id": target_id})
        if partner.fixture_id and (result.status == 404 or self._gone(result)):
            target_id = self._make_repost_target(partner)  # the target was deleted: make a new one
            result = self._call("repost", "POST", f"/2/users/{prober_id}/retweets", self.prober,
                                json_body={"tweet_id": target_id})
        if 327 in platform_errors(result)[0]:  # reposted already: a pending cleanup's leftover
            self.ctx.record_artifact(CreatedArtifact(K.REBLOG, str(target_id), "prober"))
        data = self._expect_data(result, write=True)
        if data.get("retweeted") is not True:
            raise ProbeError(FailureClass.INVARIANT, "repost answered 2xx but the post is not reposted", result=result)
        self.ctx.record_artifact(CreatedArtifact(K.REBLOG, str(target_id), "prober"))

    def _make_repost_target(self, partner: Credentials) -> str:
        text = ("Vigie availability probe: the test account's repost target. Probes repost and un-repost "
                "this post; it stays so that reposting can be tested without posting.")
        data = self._create_post("make repost target", partner, text)
        partner.fixture_id = data["id"]
        self.ctx.facts.setdefault("learnt_fixture_ids", {})[partner.role] = partner.fixture_id
        return partner.fixture_id

    def action_follow(self) -> None:
        prober_id, partner_id = self._remote_id("prober"), self._remote_id("partner")
        result = self._call("follow", "POST", f"/2/users/{prober_id}/following", self.prober,
                            json_body={"target_user_id": partner_id})
        data = self._expect_data(result, write=True)
        if data.get("following") is not True and data.get("pending_follow") is not True:
            raise ProbeError(FailureClass.INVARIANT, "follow answered 2xx but the relationship is not following",
                             result=result)
        self.ctx.record_artifact(CreatedArtifact(K.FOLLOW, partner_id, "prober"))

    def action_dm(self) -> None:
        partner = self.account("partner")
        partner_id = self._remote_id("partner")
        result = self._call("send", "POST", f"/2/dm_conversations/with/{partner_id}/messages", self.prober,
                            json_body={"text": self._text("direct message")})
        data = self._expect_data(result, write=True)
        event_id, conversation_id = data.get("dm_event_id"), data.get("dm_conversation_id")
        if not isinstance(event_id, str) or not event_id or not isinstance(conversation_id, str) or not conversation_id:
            raise ProbeError(FailureClass.UNEXPECTED, "the message has no dm_event_id or dm_conversation_id",
                             result=result)
        self.ctx.record_artifact(CreatedArtifact(K.DIRECT_MESSAGE, event_id, "prober"))
        # Both participants of a one-to-one conversation share its id: the recipient reads it.
        result = self._call("recipient reads", "GET", f"/2/dm_conversations/{conversation_id}/dm_events", partner)
        events = self._expect_data(result, write=False, shape=list, empty_ok=True)
        if not any(isinstance(e, dict) and e.get("id") == event_id for e in events):
            raise ProbeError(FailureClass.INVARIANT, "the message was accepted but the recipient cannot see it",
                             result=result)

    def action_read(self) -> None:
        prober_id = self._remote_id("prober")
        result = self._call("home timeline", "GET", f"/2/users/{prober_id}/timelines/reverse_chronological"
                            "?max_results=20", self.prober)
        self._expect_data(result, write=False, shape=list, empty_ok=True)

    def action_limits(self) -> None:
        limit = self.max_characters
        self.ctx.facts["max_characters"] = limit
        text = (f"Vigie limit check {self.ctx.run_key[:8]} " * (limit // 20 + 2))[: limit + 1]
        result = self._call("over-long post", "POST", "/2/tweets", self.prober, json_body={"text": text})
        if 200 <= result.status < 300:
            data = self._expect_data(result, write=True)
            if isinstance(data.get("id"), str) and data["id"]:
                self.ctx.record_artifact(CreatedArtifact(K.STATUS, data["id"], "prober"))
            raise ProbeError(FailureClass.INVARIANT,
                             f"a post of {limit + 1} characters was accepted over the limit of {limit}", result=result)
        codes, types = platform_errors(result)
        if 186 in codes:
            self.ctx.facts["limit_refusal"] = f"{result.status} code 186 (over-long)"
            return
        if result.status == 400 and classify(result) == FailureClass.REJECTED:
            self.ctx.facts["limit_refusal"] = f"400 {', '.join(types) or 'bad request'}"
            return
        try:
            self._expect(result, write=True)
        except ProbeError as exc:
            # Refused for another reason (quota, rate limit, read-only, an uncoded 403): nothing was
            # published, so the limit held, though its length check is unproven; the evidence says
            # so and the posting probe reports the refusal itself.
            if exc.failure_class in (FailureClass.QUOTA_EXCEEDED, FailureClass.RATE_LIMITED,
                                     FailureClass.READ_ONLY, FailureClass.REJECTED):
                self.ctx.facts["limit_untested"] = (f"the over-long post was refused with {result.status} "
                                                    f"({exc.failure_class}) without a code naming its length")
                return
            raise
        raise ProbeError(FailureClass.UNEXPECTED, f"an over-long post answered {result.status}", result=result)

    # --- cleanup -----------------------------------------------------------------------------
    def undo(self, artifact: CreatedArtifact) -> None:
        owner = self.account(artifact.role)
        if artifact.kind == K.STATUS:
            result = self._call("delete", "DELETE", f"/2/tweets/{artifact.remote_id}", owner)
            expect = ("deleted", True)
        elif artifact.kind == K.DIRECT_MESSAGE:
            self.ctx.facts["dm_cleanup"] = DM_CLEANUP_NOTE
            result = self._call("delete message", "DELETE", f"/2/dm_events/{artifact.remote_id}", owner)
            expect = ("deleted", True)
        elif artifact.kind == K.REBLOG:
            owner_id = self._remote_id(artifact.role)
            result = self._call("unrepost", "DELETE", f"/2/users/{owner_id}/retweets/{artifact.remote_id}", owner)
            expect = ("retweeted", False)
        elif artifact.kind == K.FOLLOW:
            owner_id = self._remote_id(artifact.role)
            result = self._call("unfollow", "DELETE", f"/2/users/{owner_id}/following/{artifact.remote_id}", owner)
            expect = ("following", False)
        else:
            raise ProbeError(FailureClass.UNEXPECTED, f"cannot undo a {artifact.kind}", permanent=True)
        # Gone already is as good as removed: cleanup is idempotent.
        if result.status == 404 or self._gone(result):
            return
        data = self._expect_data(result, write=True)
        key, wanted = expect
        if data.get(key) is not wanted:
            raise ProbeError(FailureClass.UNEXPECTED, f"{result.method} {result.path} answered {key}="
                             f"{data.get(key)!r}", result=result)

    # --- helpers -----------------------------------------------------------------------------
    def _text(self, what: str) -> str:
        return f"Vigie availability probe ({what}) {self.ctx.run_key[:8]}: this is automated and removed at once."

    def _call(self, name: str, method: str, path: str, account: Credentials, **kwargs: Any) -> HttpResult:
        """One request as `account`; its rate-limit headers go into the evidence, success or not."""
        result = self.ctx.call(name, method, self.url(path), token=account.token, **kwargs)
        limits = result.rate_limit()
        if limits:
            self.ctx.facts.setdefault("rate_limits", {})[name] = limits
        return result

    def _create_post(self, step: str, account: Credentials, text: str) -> dict[str, Any]:
        result = self._call(step, "POST", "/2/tweets", account, json_body={"text": text})
        data = self._expect_data(result, write=True)
        if not isinstance(data.get("id"), str) or not data["id"]:
            raise ProbeError(FailureClass.UNEXPECTED, f"{step}: the post has no id", result=result)
        return data

    def _remote_id(self, role: str) -> str:
        account = self.account(role)
        if not account.remote_id:
            result = self._call(f"whoami ({role})", "GET", "/2/users/me", account)
            data = self._expect_data(result, write=False)
            if not isinstance(data.get("id"), str) or not data["id"]:
                raise ProbeError(FailureClass.UNEXPECTED, "/2/users/me has no id", result=result)
            account.remote_id = data["id"]
            self.ctx.facts.setdefault("learnt_remote_ids", {})[role] = account.remote_id
        return account.remote_id

    @staticmethod
    def _gone(result: HttpResult) -> bool:
        """An answer (below 500) that says only that the resource does not exist."""
        if result.status >= 500 or "resource-not-found" not in platform_errors(result)[1]:
            return False
        body = result.json()
        return isinstance(body, dict) and body.get("data") is None

    def _expect_data(self, result: HttpResult, *, write: bool, shape: type = dict, empty_ok: bool = False) -> Any:
        """The `data` member of a 2xx answer. A 2xx with only `errors` (X's partial errors) is a
        failure classed by its identifiers; `empty_ok` accepts a list answer without `data`
        (`{"meta": {"result_count": 0}}`)."""
        self._expect(result, write=write)
        body = result.json()
        if not isinstance(body, dict):
            raise ProbeError(FailureClass.UNEXPECTED, f"{result.method} {result.path} answered a JSON "
                             f"{type(body).__name__}, expected an object", result=result)
        data = body.get("data")
        if data is None and body.get("errors"):
            codes, types = platform_errors(result)
            failure = classify_identifiers(codes, types) or FailureClass.UNEXPECTED
            self._note_identifiers(codes, types)
            raise ProbeError(failure, f"{result.method} {result.path} answered {result.status} with errors only: "
                             f"{self._error_text(result)}", result=result,
                             permanent=failure in (FailureClass.AUTH, FailureClass.REJECTED))
        if data is None and empty_ok and shape is list:
            return []
        if not isinstance(data, shape):
            raise ProbeError(FailureClass.UNEXPECTED, f"{result.method} {result.path} answered without a "
                             f"`data` {shape.__name__}", result=result)
        return data

    def _expect(self, result: HttpResult, *, write: bool) -> None:
        failure = classify(result)
        if failure is None:
            return
        codes, types = platform_errors(result)
        self._note_identifiers(codes, types)
        uncoded = classify_identifiers(codes, types) is None
        if uncoded and needs_diagnostic(result, write=write) and failure != FailureClass.AUTH:
            failure = self._refusal(result)
        raise ProbeError(failure, f"{result.method} {result.path} answered {result.status}: {self._error_text(result)}",
                         result=result, permanent=failure in (FailureClass.AUTH, FailureClass.REJECTED))

    def _note_identifiers(self, codes: list[int], types: list[str]) -> None:
        if codes:
            self.ctx.facts["platform_codes"] = codes
        if types:
            self.ctx.facts["problem_types"] = types

    def _error_text(self, result: HttpResult) -> str:
        codes, types = platform_errors(result)
        label = ", ".join([f"code {c}" for c in codes] + types)
        text = self.ctx.http.redact(result.error_text(limit=2000))[:300]
        return f"{text} ({label})" if label else text

    def _refusal(self, result: HttpResult) -> str:
        """A write refused with an uncoded 403 or a 50x: a diagnostic read tells which refusal.

        502/503/504 to a write while an authenticated read works is a read-only platform; if the
        read fails too it is a server error. 403 to a write while the account can still read is a
        refusal of the action; if the read is refused too, the account itself is locked out.
        """
        try:
            probe = self._call("diagnostic read", "GET", "/2/users/me", self.prober)
        except ProbeError:
            return refusal_class(result, reads_work=None)
        return refusal_class(result, reads_work=200 <= probe.status < 300)
