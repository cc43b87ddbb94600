"""The sandbox's own in-memory store (not Vigie's database), guarded by one lock."""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from . import entities as ent
from .common import NOT_ALLOWED, NOT_FOUND, ApiError, utcnow
from .config import SandboxConfig
from .entities import Account, Follow, Status
from .oauth_model import App, Grant, OAuthError, check_scopes, scope_list
from .faults import Effects, Fault, make_fault, resolve
from .official import OfficialPage
from .ratelimit import RateLimiter, Verdict
from .text import countable_length, hashtags, mentioned_usernames

VISIBILITIES = ("public", "unlisted", "private", "direct")
IDEMPOTENCY_TTL_S = 3600  # Mastodon keeps Idempotency-Key results "for up to 1 hour"
PROBER_ID, PARTNER_ID = "1", "2"
GRANT_TTL_S = 600  # Doorkeeper's authorization_code_expires_in default: 10 minutes


class SandboxState:
    """Accounts, statuses, follows, idempotency keys, faults and rate-limit counters.

    Every public method takes the lock itself (an RLock, so methods may call each other) and returns
    plain JSON-ready data, so the HTTP layer never touches shared structures unlocked.
    """

    def __init__(self, config: SandboxConfig | None = None, base_url: str = "http://127.0.0.1") -> None:
        self.config = config or SandboxConfig()
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self.clock: Callable[[], float] = time.time
        created = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        self.accounts: dict[str, Account] = {
            PROBER_ID: Account(PROBER_ID, "vigie_prober", "Vigie prober", self.config.prober_token, created),
            PARTNER_ID: Account(PARTNER_ID, "vigie_partner", "Vigie partner", self.config.partner_token, created),
        }
        self.statuses: dict[int, Status] = {}
        self.follows: dict[tuple[str, str], Follow] = {}
        self.idempotency: dict[tuple[str, str], tuple[int, float]] = {}
        self.conversation_ids: dict[frozenset[str], int] = {}
        self.conversation_read: dict[tuple[str, int], int] = {}
        self.faults: dict[str, Fault] = {}
        self.fanout_pending: set[int] = set()
        self.follows_inserting: set[tuple[str, str]] = set()  # takahe mode: follows being inserted  # statuses the fan-out worker has yet to deliver
        self.apps: dict[str, App] = {}  # by client_id
        self.grants: dict[str, Grant] = {}  # authorization codes, by code
        self.limiter = RateLimiter(self.config.limits())
        self.official = OfficialPage()
        self._last_id = 0
        self._fault_seq = 0

    # -- helpers (callers hold the lock) ------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=timezone.utc)

    def _next_id(self) -> int:
        # Snowflake-like, as Mastodon's: milliseconds << 16, bumped to stay strictly increasing.
        candidate = int(self.clock() * 1000) << 16
        self._last_id = max(candidate, self._last_id + 1)
        return self._last_id

    def reblog_by(self, account_id: str, original_id: int) -> Status | None:
        for status in self.statuses.values():
            if status.reblog_of == original_id and status.account_id == account_id:
                return status
        return None

    def can_see(self, viewer: Account | None, status: Status) -> bool:
        if status.reblog_of is not None:
            original = self.statuses.get(status.reblog_of)
            return original is not None and self.can_see(viewer, original)
        if status.visibility in ("public", "unlisted"):
            return True
        if viewer is None:
            return False
        if viewer.id == status.account_id or viewer.id in status.mention_ids:
            return True
        return status.visibility == "private" and (viewer.id, status.account_id) in self.follows

    def _visible(self, viewer: Account, status_id: str) -> Status:
        status = self.statuses.get(int(status_id)) if status_id.isdigit() and len(status_id) < 20 else None
        if status is None or not self.can_see(viewer, status):
            raise ApiError(404, NOT_FOUND)  # invisible is indistinguishable from absent, as in Mastodon
        return status

    def _fanout_stalled(self) -> bool:
        return any(f.base_kind == "fanout_stalled" for f in self._live_faults())

    def _fanout_queue(self, status: Status) -> None:
        """Hand a new status to the fan-out worker: delivered now with no delay and no stall."""
        status.fanout_at = self.clock() + self.config.fanout_delay
        status.delivered = False
        self.fanout_pending.add(status.id)
        self._fanout_run()

    def _fanout_run(self) -> None:
        """The fan-out worker's pass, done lazily when a timeline is read: every status due is
        delivered to followers, unless the worker is stalled (then the backlog waits)."""
        if self._fanout_stalled():
            return
        now = self.clock()
        for status_id in list(self.fanout_pending):
            status = self.statuses.get(status_id)
            if status is None or status.fanout_at <= now:
                self.fanout_pending.discard(status_id)
                if status is not None:
                    status.delivered = True

    def _account(self, account_id: str) -> Account:
        account = self.accounts.get(account_id)
        if account is None:
            raise ApiError(404, NOT_FOUND)
        return account

    # -- auth and limits ----------------------------------------------------------------------------

    def account_for_token(self, token: str | None) -> Account | None:
        if not token:
            return None
        found = None
        for account in self.accounts.values():  # compare with every token: no early exit, no timing hint
            if hmac.compare_digest(account.token.encode(), token.encode()):
                found = account
        return found

    def is_control_token(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.config.control_token.encode(), token.encode())

    def rate_limit(self, account: Account, families: list[str]) -> Verdict:
        with self.lock:
            return self.limiter.hit(account.id, families, self.clock())

    # -- faults -------------------------------------------------------------------------------------

    def _live_faults(self) -> list[Fault]:
        now = self.now()
        for fault_id in [f.id for f in self.faults.values() if f.expired(now)]:
            del self.faults[fault_id]
        return list(self.faults.values())

    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._fault_seq += 1
            fault = make_fault(str(self._fault_seq), spec, self.now())
            self.faults[fault.id] = fault
            return fault.to_json()

    def list_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_json() for f in self._live_faults()]

    def remove_fault(self, fault_id: str) -> dict[str, Any] | None:
        with self.lock:
            # What the official page was due to declare, it declared before the fault went.
            self.official.follow_faults(self.now(), self._live_faults())
            fault = self.faults.pop(fault_id, None)
            return fault.to_json() if fault else None

    def clear_faults(self) -> int:
        with self.lock:
            count = len(self._live_faults())
            self.official.follow_faults(self.now(), list(self.faults.values()))
            self.faults.clear()
            return count

    def official_page(self) -> OfficialPage:
        """The official page brought up to now (faults acknowledged as due); hold the lock while using it."""
        with self.lock:
            self.official.follow_faults(self.now(), self._live_faults())
            return self.official

    def effects(self, action: str | None, op: str, location: str | None) -> Effects:
        with self.lock:
            return resolve(self._live_faults(), action, op, location)

    def action_of_status(self, status_id: str) -> str:
        """Fault scope of DELETE /statuses/:id: 'dm' for a direct status, 'repost' for a reblog, else 'post'."""
        with self.lock:
            status = self.statuses.get(int(status_id)) if status_id.isdigit() and len(status_id) < 20 else None
            if status is not None and status.reblog_of is not None:
                return "repost"
            return "dm" if status is not None and status.visibility == "direct" else "post"

    # -- accounts and relationships -----------------------------------------------------------------

    def verify_credentials(self, viewer: Account) -> dict[str, Any]:
        with self.lock:
            return ent.credential_account_json(self, viewer)

    def account(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            return ent.account_json(self, self._account(account_id))

    def instance(self) -> dict[str, Any]:
        with self.lock:
            return ent.instance_json(self)

    def follow(self, viewer: Account, target_id: str, reblogs: bool, notify: bool,
               languages: list[str] | None) -> dict[str, Any]:
        with self.lock:
            target = self._account(target_id)
            if target.id == viewer.id:
                raise ApiError(403, NOT_ALLOWED)
            earlier = self.follows.get((viewer.id, target.id))
            effective_at = earlier.effective_at if earlier else self.clock() + self.config.follow_delay
            self.follows[(viewer.id, target.id)] = Follow(reblogs, notify, languages, effective_at)
            return ent.relationship_json(self, viewer, target)

    def unfollow(self, viewer: Account, target_id: str) -> dict[str, Any]:
        with self.lock:
            target = self._account(target_id)
            self.follows.pop((viewer.id, target.id), None)
            return ent.relationship_json(self, viewer, target)

    def relationships(self, viewer: Account, ids: list[str]) -> list[dict[str, Any]]:
        with self.lock:
            return [ent.relationship_json(self, viewer, self.accounts[i]) for i in ids if i in self.accounts]

    # -- statuses -----------------------------------------------------------------------------------

    def create_status(self, author: Account, *, text: str, visibility: str, spoiler_text: str = "",
                      sensitive: bool = False, language: str | None = None, in_reply_to_id: str | None = None,
                      idempotency_key: str | None = None, accept_overlong: bool = False) -> dict[str, Any]:
        with self.lock:
            now_mono = time.monotonic()
            if idempotency_key:
                # Checked before validation, as PostStatusService does: a replay returns the first result.
                for key in [k for k, (_, exp) in self.idempotency.items() if exp <= now_mono]:
                    del self.idempotency[key]
                earlier = self.idempotency.get((author.id, idempotency_key))
                if earlier and earlier[0] in self.statuses:
                    return ent.status_json(self, self.statuses[earlier[0]], author)
            if not text.strip():
                raise ApiError(422, "Validation failed: Text can't be blank")
            if visibility not in VISIBILITIES:
                raise ApiError(422, "Validation failed: Visibility is not included in the list")
            limit = self.config.max_characters
            if not accept_overlong and countable_length(text, spoiler_text) > limit:
                if self.config.compat == "takahe":
                    raise ApiError(400, "Status is too long")
                raise ApiError(422, f"Validation failed: Text character limit of {limit} exceeded")
            reply_to = self._visible(author, in_reply_to_id) if in_reply_to_id else None
            by_name = {a.username: a for a in self.accounts.values()}
            mentions = [by_name[n].id for n in mentioned_usernames(text) if n in by_name]
            status = Status(
                id=self._next_id(), account_id=author.id, text=text, visibility=visibility,
                created_at=self.now(), spoiler_text=spoiler_text, sensitive=sensitive or bool(spoiler_text),
                language=language or "en", mention_ids=mentions, tags=hashtags(text),
                in_reply_to_id=reply_to.id if reply_to else None,
                in_reply_to_account_id=reply_to.account_id if reply_to else None,
            )
            self.statuses[status.id] = status
            self._fanout_queue(status)
            if visibility == "direct":
                self.conversation_ids.setdefault(frozenset([author.id, *mentions]), len(self.conversation_ids) + 1)
            if idempotency_key:
                self.idempotency[(author.id, idempotency_key)] = (status.id, now_mono + IDEMPOTENCY_TTL_S)
            return ent.status_json(self, status, author)

    def get_status(self, viewer: Account, status_id: str) -> dict[str, Any]:
        with self.lock:
            return ent.status_json(self, self._visible(viewer, status_id), viewer)

    def delete_status(self, viewer: Account, status_id: str) -> dict[str, Any]:
        with self.lock:
            status = self._visible(viewer, status_id)
            if status.account_id != viewer.id:
                raise ApiError(404, NOT_FOUND)  # Mastodon looks it up among the caller's own statuses
            rendered = ent.status_json(self, status, viewer, source=True)
            del self.statuses[status.id]
            for reblog_id in [s.id for s in self.statuses.values() if s.reblog_of == status.id]:
                del self.statuses[reblog_id]  # reblogs of a deleted status go with it
            return rendered

    def reblog(self, viewer: Account, status_id: str, visibility: str | None) -> dict[str, Any]:
        with self.lock:
            original = self._visible(viewer, status_id)
            if original.reblog_of is not None:  # reblogging a reblog boosts the original
                original = self.statuses[original.reblog_of]
            if original.visibility == "direct":
                raise ApiError(422, "Validation failed: Reblog of status is not permitted")
            if original.visibility == "private" and original.account_id != viewer.id:
                raise ApiError(403, NOT_ALLOWED)
            existing = self.reblog_by(viewer.id, original.id)
            if existing is None:
                if original.visibility == "private":
                    chosen = "private"
                elif visibility in ("public", "unlisted", "private"):
                    chosen = visibility
                else:
                    chosen = original.visibility
                existing = Status(id=self._next_id(), account_id=viewer.id, text="", visibility=chosen,
                                  created_at=self.now(), language=None, reblog_of=original.id)
                self.statuses[existing.id] = existing
                self._fanout_queue(existing)
            return ent.status_json(self, existing, viewer)

    def unreblog(self, viewer: Account, status_id: str) -> dict[str, Any]:
        with self.lock:
            original = self._visible(viewer, status_id)
            if original.reblog_of is not None:
                original = self.statuses[original.reblog_of]
            existing = self.reblog_by(viewer.id, original.id)
            if existing is not None:
                del self.statuses[existing.id]
            return ent.status_json(self, original, viewer)

    # -- timelines ----------------------------------------------------------------------------------

    def home_timeline(self, viewer: Account, *, limit: int, max_id: int | None = None,
                      since_id: int | None = None, min_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            self._fanout_run()
            chosen = []
            for status in self.statuses.values():
                follow = self.follows.get((viewer.id, status.account_id))
                if status.account_id != viewer.id and (follow is None or follow.effective_at > self.clock()
                                                       or not status.delivered):
                    continue  # not followed (or the follow still pending), or not yet fanned out
                if status.reblog_of is not None and follow is not None and not follow.reblogs:
                    continue
                if not self.can_see(viewer, status):
                    continue
                if (max_id is not None and status.id >= max_id) or (since_id is not None and status.id <= since_id) \
                        or (min_id is not None and status.id <= min_id):
                    continue
                chosen.append(status)
            chosen.sort(key=lambda s: s.id, reverse=min_id is None)
            page = chosen[:limit]
            if min_id is not None:  # min_id pages forward from the oldest, still answered newest first
                page.reverse()
            return [ent.status_json(self, s, viewer) for s in page]

    def account_statuses(self, viewer: Account, account_id: str, *, limit: int,
                         max_id: int | None = None) -> list[dict[str, Any]]:
        """GET /api/v1/accounts/:id/statuses: the account's statuses and reblogs the viewer may see,
        newest first (direct messages only to those in them)."""
        with self.lock:
            self._account(account_id)
            chosen = sorted((s for s in self.statuses.values()
                             if s.account_id == account_id and self.can_see(viewer, s)
                             and (max_id is None or s.id < max_id)), key=lambda s: s.id, reverse=True)
            return [ent.status_json(self, s, viewer) for s in chosen[:limit]]

    def following(self, account_id: str, *, limit: int) -> list[dict[str, Any]]:
        """GET /api/v1/accounts/:id/following: the accounts it follows (accepted follows only)."""
        with self.lock:
            self._account(account_id)
            now = self.clock()
            ids = [target for (follower, target), f in self.follows.items()
                   if follower == account_id and f.effective_at <= now]
            return [ent.account_json(self, self.accounts[i]) for i in ids[:limit]]

    def conversations(self, viewer: Account, *, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            latest: dict[int, Status] = {}
            participants: dict[int, frozenset[str]] = {}
            for status in self.statuses.values():
                if status.visibility != "direct" or not self.can_see(viewer, status):
                    continue
                key = frozenset([status.account_id, *status.mention_ids])
                conv_id = self.conversation_ids.setdefault(key, len(self.conversation_ids) + 1)
                participants[conv_id] = key
                if conv_id not in latest or status.id > latest[conv_id].id:
                    latest[conv_id] = status
            result = []
            for conv_id, status in sorted(latest.items(), key=lambda kv: kv[1].id, reverse=True)[:limit]:
                others = [self.accounts[i] for i in sorted(participants[conv_id]) if i != viewer.id] or [viewer]
                read_up_to = self.conversation_read.get((viewer.id, conv_id), 0)
                result.append({
                    "id": str(conv_id),
                    "unread": status.account_id != viewer.id and status.id > read_up_to,
                    "accounts": [ent.account_json(self, a) for a in others],
                    "last_status": ent.status_json(self, status, viewer),
                })
            return result

    def mark_conversation_read(self, viewer: Account, conv_id: str) -> dict[str, Any]:
        with self.lock:
            for conversation in self.conversations(viewer, limit=10**9):
                if conversation["id"] == conv_id:
                    self.conversation_read[(viewer.id, int(conv_id))] = int(conversation["last_status"]["id"])
                    conversation["unread"] = False
                    return conversation
            raise ApiError(404, NOT_FOUND)

    # -- OAuth (Doorkeeper's authorization-code flow, as Mastodon runs it) ----------------------------

    def register_app(self, *, name: str, redirect_uris: list[str], scopes: str, website: str | None) -> dict[str, Any]:
        with self.lock:
            app = App(id=str(len(self.apps) + 1), name=name, website=website, scopes=check_scopes(scopes),
                      redirect_uris=redirect_uris, client_id=secrets.token_urlsafe(32),
                      client_secret=secrets.token_urlsafe(32))
            self.apps[app.client_id] = app
            return app.to_json(credentials=True)

    def authorize(self, *, client_id: str, redirect_uri: str, scope: str | None, login: str | None) -> dict[str, Any]:
        """Approve an authorization request as the logged-in account (the prober unless `login` names
        another) and issue a one-time code. OAuthError for what Doorkeeper's error page would show."""
        with self.lock:
            app = self.apps.get(client_id)
            if app is None:
                raise OAuthError("invalid_client")
            if redirect_uri not in app.redirect_uris:
                raise OAuthError("invalid_redirect_uri")
            # Doorkeeper: no scope asked means the server's default scope (Mastodon's is "read").
            wanted = scope_list(scope) if scope and scope.strip() else ["read"]
            if not set(wanted) <= set(app.scopes):
                raise OAuthError("invalid_scope")
            username = login or self.accounts[PROBER_ID].username
            account = next((a for a in self.accounts.values() if a.username == username), None)
            if account is None:
                raise OAuthError("access_denied", f"No account named {username!r} on this sandbox.")
            grant = Grant(code=secrets.token_urlsafe(32), client_id=client_id, account_id=account.id,
                          scopes=wanted, redirect_uri=redirect_uri, expires_at=self.clock() + GRANT_TTL_S)
            self.grants[grant.code] = grant
            return {"code": grant.code, "app": app.name, "account": account.username, "scopes": wanted}

    def exchange_code(self, *, grant_type: str | None, code: str | None, client_id: str | None,
                      client_secret: str | None, redirect_uri: str | None) -> dict[str, Any]:
        """POST /oauth/token with grant_type=authorization_code: the code's account's token, once."""
        with self.lock:
            app = self.apps.get(client_id or "")
            if app is None or not hmac.compare_digest(app.client_secret.encode(), (client_secret or "").encode()):
                raise OAuthError("invalid_client")
            if not grant_type:
                raise OAuthError("invalid_request", "Missing required parameter: grant_type.")
            if grant_type != "authorization_code":
                raise OAuthError("unsupported_grant_type")
            if not code:
                raise OAuthError("invalid_request", "Missing required parameter: code.")
            grant = self.grants.get(code or "")
            if grant is None or grant.used or grant.client_id != app.client_id \
                    or grant.redirect_uri != redirect_uri or grant.expires_at <= self.clock():
                raise OAuthError("invalid_grant")
            grant.used = True  # a code is good for one token (RFC 6749 §4.1.2)
            return {"access_token": self.accounts[grant.account_id].token, "token_type": "Bearer",
                    "scope": " ".join(grant.scopes), "created_at": int(self.clock())}

    # -- control ------------------------------------------------------------------------------------

    def artifacts(self) -> dict[str, Any]:
        """What probes may have left behind, per seeded account."""
        with self.lock:
            result = {}
            for account in self.accounts.values():
                own = [s for s in self.statuses.values() if s.account_id == account.id]
                result[account.username] = {
                    "statuses": sum(1 for s in own if s.reblog_of is None and s.visibility != "direct"),
                    "reblogs": sum(1 for s in own if s.reblog_of is not None),
                    "follows": sum(1 for (follower, _) in self.follows if follower == account.id),
                    "direct_messages": sum(1 for s in own if s.reblog_of is None and s.visibility == "direct"),
                }
            return {"accounts": result}

    def reset(self) -> None:
        """Forget everything probes did; ids keep increasing so stale ids never resolve again."""
        with self.lock:
            self.statuses.clear()
            self.follows.clear()
            self.fanout_pending.clear()
            self.idempotency.clear()
            self.conversation_read.clear()
            self.faults.clear()
            self.apps.clear()
            self.grants.clear()
            self.limiter.reset()
            self.official.reset()

