"""Mastodon-compatible adapter (also watches the bundled sandbox) over the client REST API.

Failure classes come from status codes, rate-limit headers and diagnostic reads, never from the
error text: Mastodon localizes its messages per request.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from platforms.adapters.base import (
    READ_ONLY_WORDS, BaseAdapter, CreatedArtifact, WriteLimit, needs_diagnostic, refusal_class, reset_is_far,
    token_refused,
)
from platforms.errors import ProbeError
from platforms.http import HttpResult
from platforms.vocabulary import Action, Artifact, FailureClass

DEFAULT_MAX_CHARACTERS = 500
MAX_TESTABLE_CHARACTERS = 100_000


def classify(result: HttpResult, *, now: datetime | None = None) -> str | None:
    """The failure class a response alone shows, or None for success. 503 on a write and 403 need
    a diagnostic read to tell read-only from server error and auth from refusal: see `_refusal`."""
    status = result.status
    if 200 <= status < 300:
        return None
    if token_refused(result):
        return FailureClass.AUTH  # Takahē refuses a bad token with 400 text/html "Invalid Bearer token"
    if status == 429:
        far = reset_is_far(result, "x-ratelimit-reset", now)  # Mastodon's buckets are 5 minutes
        return FailureClass.QUOTA_EXCEEDED if far else FailureClass.RATE_LIMITED
    if 300 <= status < 400:
        return FailureClass.UNEXPECTED
    if status >= 500:
        return FailureClass.SERVER_ERROR
    return FailureClass.REJECTED


def _next_max_id(link: str) -> str | None:
    """The `max_id` of a Link header's rel="next" URL (RFC 8288), if any."""
    for part in link.split(","):
        target, _, params = part.partition(";")
        if re.search(r'rel\s*=\s*"?next"?', params):
            values = parse_qs(urlsplit(target.strip().strip("<>")).query).get("max_id")
            return values[-1] if values and values[-1] else None
    return None


def _when(value) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _followed(relationship: dict) -> bool:
    """A follow is accepted once the relationship says `following`, or `requested` (a locked
    account: the request is what a user's follow makes)."""
    return relationship.get("following") is True or relationship.get("requested") is True


def _relationship_seen(relationship: dict) -> dict:
    return {"following": relationship.get("following"), "requested": relationship.get("requested")}


STATUS_KINDS = (Artifact.Kind.STATUS, Artifact.Kind.REBLOG, Artifact.Kind.DIRECT_MESSAGE)
# Mastodon's own numbers (app/lib/rate_limiter.rb, config/initializers/rack_attack.rb): statuses
# (reblogs are statuses) 300 per 3 h, deletes and unreblogs share 30 per 30 min, follows 400 per day.
MASTODON_WRITE_LIMITS = (
    WriteLimit("statuses", 300, timedelta(hours=3), STATUS_KINDS, "created"),
    WriteLimit("deletes", 30, timedelta(minutes=30), STATUS_KINDS, "cleaned"),
    WriteLimit("follows", 400, timedelta(hours=24), (Artifact.Kind.FOLLOW,), "created"),
)
MASTODON_WRITES_PER_RUN = {
    Action.POST: {"prober": {"statuses": 1, "deletes": 1}},
    Action.REPOST: {"prober": {"statuses": 1, "deletes": 1}},
    Action.FOLLOW: {"prober": {"follows": 1}},
    Action.DM: {"prober": {"statuses": 1, "deletes": 1}},
    Action.DELIVERY: {"prober": {"statuses": 1, "deletes": 1}},
}


class MastodonAdapter(BaseAdapter):
    kind = "mastodon"
    actions = frozenset({Action.POST, Action.REPOST, Action.FOLLOW, Action.DM, Action.READ, Action.LIMITS,
                         Action.DELIVERY})
    write_limits = MASTODON_WRITE_LIMITS
    writes_per_run = MASTODON_WRITES_PER_RUN
    # The delivery probe's partner follows the prober once and keeps that follow.
    writes_once = {Action.DELIVERY: {"partner": {"follows": 1}}}

    # --- actions ---------------------------------------------------------------------------
    def action_post(self) -> None:
        status = self._create_status("create status", "prober", self._text("post"), "unlisted", kind=Artifact.Kind.STATUS)
        read = self.ctx.call("read back", "GET", self.url(f"/api/v1/statuses/{status['id']}"), token=self.prober.token)
        if read.status == 404:
            raise ProbeError(FailureClass.INVARIANT, "the post was accepted but cannot be read back", result=read)
        self._expect(read, write=False)

    def action_repost(self) -> None:
        # The prober reposts the partner's long-lived target post (made once, kept), so reposting
        # is tested on someone else's post without posting anything.
        partner = self.account("partner")
        target_id = partner.fixture_id or self._make_repost_target(partner)
        result = self.ctx.call("reblog", "POST", self.url(f"/api/v1/statuses/{target_id}/reblog"),
                               token=self.prober.token, data={"visibility": "unlisted"})
        if result.status == 404 and partner.fixture_id:  # the target was deleted: make a new one
            target_id = self._make_repost_target(partner)
            result = self.ctx.call("reblog", "POST", self.url(f"/api/v1/statuses/{target_id}/reblog"),
                                   token=self.prober.token, data={"visibility": "unlisted"})
        if 200 <= result.status < 300:
            # On record before anything is checked: a reblog judged wrong is still undone.
            self.ctx.record_artifact(CreatedArtifact(Artifact.Kind.REBLOG, str(target_id), "prober"))
        data = self._expect_json(result, write=True)
        # Mastodon answers with the new reblog status; some servers answer with the original
        # marked `reblogged: true`. Either way the undo is an unreblog of the original.
        if not (isinstance(data.get("reblog"), dict) or data.get("reblogged") is True):
            raise ProbeError(FailureClass.UNEXPECTED, "reblog answered without a reblog", result=result)

    def _make_repost_target(self, partner) -> str:
        text = ("Vigie availability probe: the test account's repost target. Probes repost and un-repost "
                "this post; it stays so that reposting can be tested without posting.")
        result = self.ctx.call("make repost target", "POST", self.url("/api/v1/statuses"), token=partner.token,
                               data={"status": text, "visibility": "unlisted"},
                               headers={"Idempotency-Key": f"{self.ctx.run_key}-repost-target"})
        data = self._expect_json(result, write=True)
        if not data.get("id"):
            raise ProbeError(FailureClass.UNEXPECTED, "the repost target has no id", result=result)
        partner.fixture_id = str(data["id"])
        self.ctx.facts.setdefault("learnt_fixture_ids", {})[partner.role] = partner.fixture_id
        return partner.fixture_id

    def action_follow(self) -> None:
        partner_id = self._remote_id("partner")
        began = time.monotonic()
        result = self.ctx.call("follow", "POST", self.url(f"/api/v1/accounts/{partner_id}/follow"),
                               token=self.prober.token)
        if 200 <= result.status < 300:
            # On record before anything is checked: a follow judged wrong is still undone.
            self.ctx.record_artifact(CreatedArtifact(Artifact.Kind.FOLLOW, partner_id, "prober"))
        elif result.status >= 500:
            self._follow_collided(partner_id, result)
        data = self._expect_json(result, write=True)
        accepted_ms = int((time.monotonic() - began) * 1000)
        self.ctx.facts["follow_answer"] = _relationship_seen(data)
        if _followed(data):
            self.ctx.facts["accepted_ms"] = self.ctx.facts["effective_ms"] = accepted_ms
            return
        # Accepted is not done: Takahē's worker (and Mastodon, for a locked or remote account)
        # completes the follow later. Re-read the relationship until it shows, within the settle time.
        def read() -> tuple[bool, dict]:
            answer = self.ctx.call("relationship", "GET",
                                   self.url(f"/api/v1/accounts/relationships?id[]={partner_id}"),
                                   token=self.prober.token)
            rows = self._expect_json(answer, write=False, shape=list)
            row = next((r for r in rows if isinstance(r, dict) and str(r.get("id")) == partner_id), {})
            return _followed(row), _relationship_seen(row)

        if not self.ctx.settle("follow", read, accepted_ms=accepted_ms):
            if self.ctx.contended(CreatedArtifact(Artifact.Kind.FOLLOW, partner_id, "prober")):
                # Another run of this account (another location) followed the same partner meanwhile
                # and undid it: the relationship this run waited for was taken away by Vigie itself.
                # Its own doing, told to on-call, never counted against the platform.
                self.ctx.facts["self_inflicted"] = "collision"
                raise ProbeError(FailureClass.INVARIANT,
                                 "the follow was accepted but another run of this account followed the same "
                                 "account meanwhile and undid it, so its effect could not be seen "
                                 f"({len(self.ctx.facts['follow_reads'])} reads)", result=result)
            raise ProbeError(FailureClass.INVARIANT,
                             f"the follow was accepted but the relationship was still not following after "
                             f"{self.ctx.settle_s:g} s ({len(self.ctx.facts['follow_reads'])} reads)", result=result)

    def _follow_collided(self, partner_id: str, result: HttpResult, *, role: str = "prober") -> None:
        """A follow answered 5xx that is in effect all the same: another run of this account followed
        the same partner at the same moment, and the server's unique constraint refused the second
        insert (Takahē answers 500). Vigie's own doing, not the platform's: the run says so
        (`self_inflicted`), so evaluation does not count it against the platform, and on-call is
        told. Not in effect: the 5xx is judged as usual."""
        def read() -> tuple[bool, dict]:
            answer = self.ctx.call("relationship after 5xx", "GET",
                                   self.url(f"/api/v1/accounts/relationships?id[]={partner_id}"),
                                   token=self.account(role).token)
            if not 200 <= answer.status < 300:  # cannot tell: judged as any 5xx is
                raise ProbeError(FailureClass.SERVER_ERROR, "relationship unreadable", result=answer)
            rows = answer.json()
            row = next((r for r in rows if isinstance(r, dict) and str(r.get("id")) == partner_id), {}) \
                if isinstance(rows, list) else {}
            return _followed(row), _relationship_seen(row)

        try:
            in_effect = self.ctx.settle("collision", read, accepted_ms=result.elapsed_ms)
        except ProbeError:
            in_effect = False
        for key in ("accepted_ms", "effective_ms", "settle_s"):
            self.ctx.facts.pop(key, None)  # not the follow's own times: it was refused
        if not in_effect:
            return
        # Not put on record here: the run whose follow was answered 200 made it, has it on record
        # (the same ledger row), and undoes it; undoing it from here would pull it from under that
        # run's own check.
        self.ctx.facts["self_inflicted"] = "collision"
        raise ProbeError(FailureClass.SERVER_ERROR,
                         f"{result.method} {result.path} answered {result.status}, but the follow is in effect: "
                         "another run of this account followed at the same moment (a duplicate insert)",
                         result=result)

    def action_dm(self) -> None:
        partner = self.account("partner")
        text = f"@{partner.username} {self._text('direct message')}"
        status = self._create_status("send", "prober", text, "direct", kind=Artifact.Kind.DIRECT_MESSAGE)
        result = self.ctx.call("recipient reads", "GET", self.url("/api/v1/conversations"), token=partner.token)
        conversations = self._expect_json(result, write=False, shape=list)
        delivered = any(
            isinstance(c, dict) and isinstance(c.get("last_status"), dict) and c["last_status"].get("id") == status["id"]
            for c in conversations
        )
        if not delivered:
            # A newer message in the same conversation (another location probing at the same
            # moment) hides ours from `last_status`: ask for ours by id, as the recipient.
            result = self.ctx.call("recipient opens", "GET", self.url(f"/api/v1/statuses/{status['id']}"),
                                   token=partner.token)
            if result.status == 404:
                raise ProbeError(FailureClass.INVARIANT, "the message was accepted but the recipient cannot see it",
                                 result=result)
            self._expect(result, write=False)

    def action_delivery(self) -> None:
        """A post by the prober must reach the home timeline of the partner, who follows the prober
        (a standing follow, made once and kept, as the repost target is): what every follower
        sees. Fan-out is asynchronous everywhere, so the partner's timeline is re-read within the
        settle time; the run keeps the time to visible (`effective_ms`). A post accepted, readable
        by its author, and never delivered is `not_delivered`."""
        partner = self.account("partner")
        prober_id = self._remote_id("prober")
        self._partner_follows(partner, prober_id)
        began = time.monotonic()
        status = self._create_status("post", "prober", self._text("delivery"), "unlisted", kind=Artifact.Kind.STATUS)
        accepted_ms = int((time.monotonic() - began) * 1000)
        status_id = str(status["id"])
        newer = f"&since_id={int(status_id) - 1}" if status_id.isdigit() else ""

        def read() -> tuple[bool, dict]:
            answer = self.ctx.call("follower's home timeline", "GET",
                                   self.url(f"/api/v1/timelines/home?limit=40{newer}"), token=partner.token)
            rows = self._expect_json(answer, write=False, shape=list)
            seen = any(isinstance(r, dict) and str(r.get("id")) == status_id for r in rows)
            return seen, {"seen": seen}

        if self.ctx.settle("delivery", read, accepted_ms=accepted_ms):
            return
        mine = self.ctx.call("author reads", "GET", self.url(f"/api/v1/statuses/{status_id}"), token=self.prober.token)
        if mine.status == 404:
            raise ProbeError(FailureClass.INVARIANT, "the post was accepted but cannot be read back", result=mine)
        self._expect(mine, write=False)
        self.ctx.facts["author_reads"] = True
        raise ProbeError(FailureClass.NOT_DELIVERED,
                         f"the post was accepted and readable by its author, but was not in a follower's home "
                         f"timeline after {self.ctx.settle_s:g} s ({len(self.ctx.facts['delivery_reads'])} reads)")

    def _partner_follows(self, partner, prober_id: str) -> None:
        """The partner follows the prober: checked each run, made (and awaited) when missing."""
        def read() -> tuple[bool, dict]:
            answer = self.ctx.call("partner's relationship", "GET",
                                   self.url(f"/api/v1/accounts/relationships?id[]={prober_id}"), token=partner.token)
            rows = self._expect_json(answer, write=False, shape=list)
            row = next((r for r in rows if isinstance(r, dict) and str(r.get("id")) == prober_id), {})
            return _followed(row), _relationship_seen(row)

        done, _ = read()
        if done:
            return
        result = self.ctx.call("partner follows", "POST", self.url(f"/api/v1/accounts/{prober_id}/follow"),
                               token=partner.token)
        if result.status >= 500:
            # Both locations' delivery runs making the standing follow at once (their first runs):
            # the second insert breaks the server's unique constraint. In effect all the same: Vigie's doing.
            self._follow_collided(prober_id, result, role="partner")
        data = self._expect_json(result, write=True)
        self.ctx.facts["partner_follow_made"] = True
        if _followed(data):
            return
        facts = dict(self.ctx.facts)
        settled = self.ctx.settle("partner_follow", read, accepted_ms=0)
        # The follow's own times are not the delivery's: keep only its reads.
        for key in ("accepted_ms", "effective_ms", "settle_s"):
            if key in facts:
                self.ctx.facts[key] = facts[key]
            else:
                self.ctx.facts.pop(key, None)
        if not settled:
            raise ProbeError(FailureClass.INVARIANT, "the partner's follow of the prober was accepted but never "
                                                     f"became effective within {self.ctx.settle_s:g} s", result=result)

    def action_read(self) -> None:
        result = self.ctx.call("home timeline", "GET", self.url("/api/v1/timelines/home?limit=20"), token=self.prober.token)
        self._expect_json(result, write=False, shape=list)

    def action_limits(self) -> None:
        result = self.ctx.call("instance", "GET", self.url("/api/v2/instance"))
        instance = self._expect_json(result, write=False)
        raw = ((instance.get("configuration") or {}).get("statuses") or {}).get("max_characters")
        try:
            limit = int(raw) if raw is not None else DEFAULT_MAX_CHARACTERS
        except (TypeError, ValueError):
            limit = 0
        if not 1 <= limit <= MAX_TESTABLE_CHARACTERS:
            # A limit we cannot test without building an absurd post: say so rather than guess.
            self.ctx.facts["limit_untested"] = f"the instance announces max_characters={str(raw)[:40]!r}"
            return
        self.ctx.facts["max_characters"] = limit
        text = ("Vigie limit check " * (int(limit) // 18 + 2))[: int(limit) + 1]
        # Followers-only: if the platform wrongly accepts it, hardly anyone sees it before cleanup.
        result = self.ctx.call("over-long post", "POST", self.url("/api/v1/statuses"), token=self.prober.token,
                               data={"status": text, "visibility": "private"},
                               headers={"Idempotency-Key": f"{self.ctx.run_key}-limits"})
        if 200 <= result.status < 300:
            data = self._expect_json(result, write=True)
            if data.get("id"):
                self.ctx.record_artifact(CreatedArtifact(Artifact.Kind.STATUS, str(data["id"]), "prober"))
            raise ProbeError(FailureClass.INVARIANT,
                             f"a post of {limit + 1} characters was accepted over the limit of {limit}", result=result)
        # 422 (Mastodon) or 400 (Takahē) is the refusal we want. A write refused for another reason
        # (quota, rate limit, read-only) did not publish the post either: the limit held, though
        # untested; the evidence says so, and the posting probe reports the refusal itself.
        if result.status in (400, 422) and classify(result) != FailureClass.AUTH \
                and not READ_ONLY_WORDS.search(result.error_text(limit=2000)):
            return
        try:
            self._expect(result, write=True)
        except ProbeError as exc:
            if exc.failure_class in (FailureClass.QUOTA_EXCEEDED, FailureClass.RATE_LIMITED,
                                     FailureClass.READ_ONLY, FailureClass.REJECTED):
                self.ctx.facts["limit_untested"] = f"the over-long post was refused with {result.status} " \
                                                   f"({exc.failure_class}) before its length was checked"
                return
            raise
        raise ProbeError(FailureClass.UNEXPECTED, f"an over-long post answered {result.status}", result=result)

    # --- cleanup -----------------------------------------------------------------------------
    def undo(self, artifact: CreatedArtifact) -> None:
        token = self.account(artifact.role).token
        if artifact.kind in (Artifact.Kind.STATUS, Artifact.Kind.DIRECT_MESSAGE):
            result = self.ctx.call("delete", "DELETE", self.url(f"/api/v1/statuses/{artifact.remote_id}"), token=token)
        elif artifact.kind == Artifact.Kind.REBLOG:
            result = self.ctx.call("unreblog", "POST", self.url(f"/api/v1/statuses/{artifact.remote_id}/unreblog"),
                                   token=token)
        elif artifact.kind == Artifact.Kind.FOLLOW:
            result = self.ctx.call("unfollow", "POST", self.url(f"/api/v1/accounts/{artifact.remote_id}/unfollow"),
                                   token=token)
        else:
            raise ProbeError(FailureClass.UNEXPECTED, f"cannot undo a {artifact.kind}", permanent=True)
        # Gone already (404) is as good as removed: cleanup is idempotent.
        if result.status != 404:
            self._expect(result, write=True)
        if artifact.kind in (Artifact.Kind.STATUS, Artifact.Kind.DIRECT_MESSAGE):
            # A delete is verified by reading back: a server may answer 200 and keep the post (a
            # background write resurrecting it). Still there: not cleaned, tried again later.
            check = self.ctx.call("deleted?", "GET", self.url(f"/api/v1/statuses/{artifact.remote_id}"), token=token)
            if 200 <= check.status < 300:
                self.ctx.facts["deletes_lost"] = self.ctx.facts.get("deletes_lost", 0) + 1
                raise ProbeError(FailureClass.INVARIANT, "the delete was answered but the post is still readable",
                                 result=check)

    # --- the periodic sweep -------------------------------------------------------------------
    can_list_leftovers = True

    # Pages read per list (statuses, follows) and account in one sweep: 10 × 40 statuses, 10 × 80
    # follows. What lies beyond is found by the next passes, as the first pages are cleaned.
    sweep_max_pages = 10

    def leftovers(self) -> list[tuple[CreatedArtifact, datetime | None]]:
        """The test accounts' statuses, reblogs and follows, page after page (up to
        `sweep_max_pages` each): all Vigie's (the accounts are its own), less the fixtures: the
        partner's repost target and its follow of the prober (the delivery probe's follower)."""
        found: list[tuple[CreatedArtifact, datetime | None]] = []
        prober_id = self._remote_id("prober")
        roles = ["prober"] + (["partner"] if self.partner is not None else [])
        for role in roles:
            account = self.account(role)
            account_id = self._remote_id(role)
            for status in self._pages(f"statuses ({role})", f"/api/v1/accounts/{account_id}/statuses", 40,
                                      token=account.token, cursor_from_last=True):
                if not isinstance(status, dict) or not status.get("id") or str(status["id"]) == account.fixture_id:
                    continue
                made = _when(status.get("created_at"))
                if isinstance(status.get("reblog"), dict) and status["reblog"].get("id"):
                    found.append((CreatedArtifact(Artifact.Kind.REBLOG, str(status["reblog"]["id"]), role), made))
                else:
                    kind = Artifact.Kind.DIRECT_MESSAGE if status.get("visibility") == "direct" else Artifact.Kind.STATUS
                    found.append((CreatedArtifact(kind, str(status["id"]), role), made))
            # A follow list's cursor is the follow's own id, not the account's: only the Link header gives it.
            for followed in self._pages(f"following ({role})", f"/api/v1/accounts/{account_id}/following", 80,
                                        token=account.token, cursor_from_last=False):
                if not isinstance(followed, dict) or not followed.get("id"):
                    continue
                if role == "partner" and str(followed["id"]) == prober_id:
                    continue  # the delivery probe's standing follow
                found.append((CreatedArtifact(Artifact.Kind.FOLLOW, str(followed["id"]), role), None))
        return found

    def _pages(self, step: str, path: str, limit: int, *, token: str, cursor_from_last: bool):
        """The items of a paginated list, newest first, up to `sweep_max_pages` pages. The next page
        is the Link header's rel="next" (Mastodon's way); only its `max_id` is taken from it, the
        request stays on this platform's own URL (a link elsewhere would carry the token away).
        Without a Link header, `cursor_from_last` pages on the last item's id."""
        cursor = None
        seen: set[str] = set()
        for page in range(self.sweep_max_pages):
            query = f"?limit={limit}" + (f"&max_id={quote(cursor, safe='')}" if cursor else "")
            answer = self.ctx.call(step if not page else f"{step} page {page + 1}", "GET", self.url(path + query),
                                   token=token)
            items = self._expect_json(answer, write=False, shape=list)
            yield from items
            cursor = _next_max_id(answer.headers.get("link", ""))
            if cursor is None and cursor_from_last and len(items) >= limit and isinstance(items[-1], dict):
                cursor = str(items[-1].get("id") or "") or None
            if not items or cursor is None or cursor in seen:
                return
            seen.add(cursor)

    # --- helpers -----------------------------------------------------------------------------
    def _text(self, what: str) -> str:
        return f"Vigie availability probe ({what}) {self.ctx.run_key[:8]}: this is automated and removed at once."

    def _create_status(self, step: str, role: str, text: str, visibility: str, *, kind: str) -> dict[str, Any]:
        account = self.account(role)
        result = self.ctx.call(step, "POST", self.url("/api/v1/statuses"), token=account.token,
                               data={"status": text, "visibility": visibility},
                               headers={"Idempotency-Key": f"{self.ctx.run_key}-{step}"})
        data = self._expect_json(result, write=True)
        if not data.get("id"):
            raise ProbeError(FailureClass.UNEXPECTED, f"{step}: the status has no id", result=result)
        self.ctx.record_artifact(CreatedArtifact(kind, str(data["id"]), role))
        return data

    def _remote_id(self, role: str) -> str:
        account = self.account(role)
        if not account.remote_id:
            result = self.ctx.call(f"whoami ({role})", "GET", self.url("/api/v1/accounts/verify_credentials"),
                                   token=account.token)
            data = self._expect_json(result, write=False)
            if not data.get("id"):
                raise ProbeError(FailureClass.UNEXPECTED, "verify_credentials has no id", result=result)
            account.remote_id = str(data["id"])
            self.ctx.facts.setdefault("learnt_remote_ids", {})[role] = account.remote_id
        return account.remote_id

    def _expect_json(self, result: HttpResult, *, write: bool, shape: type = dict) -> Any:
        self._expect(result, write=write)
        data = result.json()
        if not isinstance(data, shape):
            raise ProbeError(FailureClass.UNEXPECTED,
                             f"{result.method} {result.path} answered a JSON {type(data).__name__}, "
                             f"expected {shape.__name__}", result=result)
        return data

    def _expect(self, result: HttpResult, *, write: bool) -> None:
        failure = classify(result)
        if failure is None:
            return
        if needs_diagnostic(result, write=write) and failure != FailureClass.AUTH:
            failure = self._refusal(result)
        text = self.ctx.http.redact(result.error_text(limit=2000))[:300]
        raise ProbeError(failure, f"{result.method} {result.path} answered {result.status}: {text}", result=result,
                         permanent=failure in (FailureClass.AUTH, FailureClass.REJECTED))

    def _refusal(self, result: HttpResult) -> str:
        """A write refused with 403, 422 or 5xx: judged by base.refusal_class with a diagnostic read."""
        try:
            probe = self.ctx.call("diagnostic read", "GET", self.url("/api/v1/accounts/verify_credentials"),
                                  token=self.prober.token)
        except ProbeError:
            return refusal_class(result, reads_work=None)
        return refusal_class(result, reads_work=200 <= probe.status < 300)


class SandboxAdapter(MastodonAdapter):
    """The bundled sandbox: the Mastodon adapter, with the sandbox's own (generous) default limits."""

    kind = "sandbox"
    write_limits = tuple(WriteLimit(r.family, 1_000_000, r.period, r.kinds, r.counts) for r in MASTODON_WRITE_LIMITS)
