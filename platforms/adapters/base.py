"""The adapter contract: how a platform kind performs each action and undoes what it created."""
from __future__ import annotations

from dataclasses import dataclass, field
import math
import re
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any, Callable, ClassVar

from platforms.errors import ProbeError
from platforms.http import HttpResult, HttpSeam, url_path
from platforms.vocabulary import FailureClass


# A 429 whose window resets further away than this is a spent allowance (a daily or 3-hourly
# quota: the Feb-2023 refusals), not short-term request throttling.
QUOTA_RESET_AFTER = timedelta(hours=1)


def reset_is_far(result: HttpResult, header: str, now: datetime | None = None) -> bool:
    """Whether the reset time in `header` is more than QUOTA_RESET_AFTER away. Platforms write it
    as an ISO time (Mastodon), a Unix time (X, Bluesky) or seconds from now (Retry-After)."""
    value = result.headers.get(header, "").strip()
    now = now or datetime.now(dt_timezone.utc)
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            return False
        wait = number - now.timestamp() if number > 10**9 else number
        return wait > QUOTA_RESET_AFTER.total_seconds()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (when if when.tzinfo else when.replace(tzinfo=dt_timezone.utc)) - now > QUOTA_RESET_AFTER


# A 400 or 403 that names the token (Takahē: 400 text/html "Invalid Bearer token") is a refused
# token, as a 401 is. One of the two places a body's words are read: no status code says it.
TOKEN_REFUSED = re.compile(r"\b(bearer|access)[ _-]?token\b|\binvalid[ _-]token\b", re.IGNORECASE)
# A 403 or 422 to a write that says the platform is read-only (English only: a localized one is
# told by the diagnostic read, as a plain refusal).
READ_ONLY_WORDS = re.compile(r"\bread[ _-]?only\b", re.IGNORECASE)


def token_refused(result: HttpResult) -> bool:
    """A token refused in any shape: 401, or a 400/403 whose answer names the token."""
    return result.status == 401 or (result.status in (400, 403)
                                    and bool(TOKEN_REFUSED.search(result.error_text(limit=500))))


def needs_diagnostic(result: HttpResult, *, write: bool) -> bool:
    """Whether a failed answer needs a diagnostic read to be judged: a write refused with 403, 422
    or any 5xx (JSON or an HTML page)."""
    return write and (result.status in (403, 422) or result.status >= 500)


def refusal_class(result: HttpResult, *, reads_work: bool | None) -> str:
    """The one function that judges a refused write, for every adapter, from the answer and the
    diagnostic read made on the same platform at once (`reads_work`; None when that read could
    not be made at all):

    - writes failing (any 5xx, HTML or JSON, or a 403/422 saying read-only) while reads work:
      `read_only`; everything failing: `server_error`;
    - a 403 while reads work: the action is refused (`rejected`); reads refused too: the account is
      locked out (`auth`); a 422 is a refused input (`rejected`).
    """
    said_read_only = result.status in (403, 422) and bool(READ_ONLY_WORDS.search(result.error_text(limit=2000)))
    if reads_work is None:
        return FailureClass.SERVER_ERROR if result.status >= 500 else FailureClass.REJECTED
    if said_read_only:
        return FailureClass.READ_ONLY if reads_work else FailureClass.AUTH
    if result.status == 422:
        return FailureClass.REJECTED
    if result.status == 403:
        return FailureClass.REJECTED if reads_work else FailureClass.AUTH
    return FailureClass.READ_ONLY if reads_work else FailureClass.SERVER_ERROR


@dataclass(frozen=True)
class WriteLimit:
    """A documented per-account write limit: `limit` writes per `period`, counting artifacts of
    `kinds` when created (`counts="created"`) or when removed (`counts="cleaned"`)."""

    family: str
    limit: int
    period: timedelta
    kinds: tuple[str, ...]
    counts: str = "created"
    # With counts="points" (AT Protocol), created and removed artifacts share one budget of points:
    # what one created and one removed artifact cost.
    cost: tuple[int, int] = (1, 1)


@dataclass
class Credentials:
    """A test account as an adapter sees it; `remote_id` is learnt once and saved by the runner."""

    role: str
    username: str
    token: str = field(repr=False)
    remote_id: str = ""
    fixture_id: str = ""
    # A kept platform session (Account.session), for platforms that log in rarely and refresh.
    session: str = field(default="", repr=False)


@dataclass(frozen=True)
class CreatedArtifact:
    """Something an action made on the platform, to be undone by `BaseAdapter.cleanup`."""

    kind: str  # probes.models.Artifact.Kind
    remote_id: str
    role: str  # which account owns it: "prober" or "partner"


@dataclass
class Step:
    name: str
    method: str
    path: str
    status: int | None
    ms: int
    ok: bool
    note: str = ""


@dataclass
class RunContext:
    """What an adapter needs from the runner: the HTTP seam, a step log, and the artifact ledger.

    `record_artifact` writes to the database at once: a created artifact is on record before
    cleanup is even tried, so a crash between the two still leaves it to be cleaned later.
    """

    http: HttpSeam
    record_artifact: Callable[[CreatedArtifact], None]
    run_key: str
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # evidence worth keeping beyond steps
    script: dict[str, Any] = field(default_factory=dict)  # the probe's steps, for scripted HTTP probes
    # Seconds the platform may take to make an accepted action effective (Platform.settle_s).
    settle_s: float = 5.0
    # Seconds between re-reads while an accepted action settles.
    settle_poll_s: float = 0.25
    # Whether another run of the same account had the same artifact (a follow of the same partner)
    # in flight during this run: its undo can take this run's effect away (Vigie's own doing).
    contended: Callable[[CreatedArtifact], bool] = lambda artifact: False

    def settle(self, name: str, read: Callable[[], tuple[bool, dict[str, Any]]], *, accepted_ms: int) -> bool:
        """Re-read until the accepted action is effective (`read` returns (done, what it saw)) or the
        settle time (cut to the run's deadline) is over. Every read is kept in the evidence
        (`<name>_reads`), with the times to accepted and to effective. True when it became effective."""
        began = time.monotonic()
        until = began + self.settle_s
        deadline = getattr(self.http, "deadline", None)
        if deadline is not None:
            until = min(until, deadline - 0.5)
        reads: list[dict[str, Any]] = []
        self.facts[f"{name}_reads"] = reads
        self.facts["accepted_ms"] = accepted_ms
        while True:
            done, seen = read()
            elapsed = time.monotonic() - began
            reads.append({"after_ms": int(elapsed * 1000), **seen})
            if done:
                self.facts["effective_ms"] = accepted_ms + int(elapsed * 1000)
                return True
            if time.monotonic() + self.settle_poll_s > until:
                self.facts["settle_s"] = self.settle_s
                return False
            time.sleep(self.settle_poll_s)

    def call(self, name: str, method: str, url: str, **kwargs: Any) -> HttpResult:
        """One HTTP request as a named step; a transport failure is logged as a failed step."""
        try:
            result = self.http.request(method, url, **kwargs)
        except ProbeError as exc:
            self.steps.append(Step(name, method, url_path(url), None, 0, False, exc.message))
            raise
        self.steps.append(Step(name, method, result.path, result.status, result.elapsed_ms, 200 <= result.status < 300))
        return result


class BaseAdapter:
    """A platform kind. Subclasses set `kind` and `actions` and implement `execute` and `undo`.

    `execute(action)` performs the action, calls `ctx.record_artifact` for each thing it creates
    as soon as it exists, and raises ProbeError (with the failure class) when the action fails.
    `undo(artifact)` removes one artifact and raises ProbeError if it could not.
    """

    kind: ClassVar[str] = ""
    actions: ClassVar[frozenset[str]] = frozenset()
    # False for kinds that can watch an API without a test account (scripted HTTP probes).
    needs_prober: ClassVar[bool] = True
    # The platform's documented per-account write limits, and what one run of each action writes
    # per account role and limit family: Vigie's own budget is checked against them.
    write_limits: ClassVar[tuple[WriteLimit, ...]] = ()
    writes_per_run: ClassVar[dict[str, dict[str, dict[str, int]]]] = {}
    # Writes an action makes once and keeps (a standing fixture), by action, role and family.
    writes_once: ClassVar[dict[str, dict[str, dict[str, int]]]] = {}

    def __init__(self, *, base_url: str, prober: Credentials, partner: Credentials | None,
                 ctx: RunContext) -> None:
        self.base_url = base_url.rstrip("/")
        self.prober = prober
        self.partner = partner
        self.ctx = ctx

    def execute(self, action: str) -> None:
        if action not in self.actions:
            raise ProbeError(FailureClass.UNEXPECTED, f"{self.kind} cannot perform {action!r}", permanent=True)
        getattr(self, f"action_{action}")()

    def undo(self, artifact: CreatedArtifact) -> None:
        raise NotImplementedError

    # Whether `leftovers` can list what the test accounts have on the platform (the periodic sweep).
    can_list_leftovers: ClassVar[bool] = False

    def leftovers(self) -> list[tuple[CreatedArtifact, datetime | None]]:
        """What Vigie's test accounts have on the platform that no fixture explains: each with when it
        was made, if the platform says. Only for kinds with `can_list_leftovers`."""
        return []

    def url(self, path: str) -> str:
        return self.base_url + path

    def account(self, role: str) -> Credentials:
        if role == "partner":
            if self.partner is None:
                raise ProbeError(FailureClass.AUTH, "this action needs a partner account; none is configured",
                                 permanent=True)
            return self.partner
        return self.prober

