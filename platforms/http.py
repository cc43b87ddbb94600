"""The one outbound HTTP seam of every adapter: bounded in time and size, secrets redacted.

Every call has a total deadline (not only a socket timeout), reads at most a capped number of
bytes, follows no redirects, and turns transport failures into ProbeError with a failure class.
Tests that must not touch a network mock `requests` here and nowhere else.
"""
from __future__ import annotations

import base64
import functools
import heapq
import html
import itertools
import json
import logging
import os
import re
import ssl
import threading
import time
from http.client import HTTPException
from http.cookiejar import DefaultCookiePolicy
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
from django.conf import settings
from urllib3.exceptions import DecodeError, HTTPError, ProtocolError, ReadTimeoutError, SSLError

from platforms.errors import ProbeError
from platforms.vocabulary import FailureClass
from platforms.netguard import SocketWatch, TargetRefused, guarded_session, settings_allowance, watching

log = logging.getLogger(__name__)

RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",  # Mastodon (ISO reset)
    "x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset",  # X (Unix reset)
    # X's 24-hour posting allowances: not in X's docs, but sent and read by clients (twapi-v2's list).
    "x-user-limit-24hour-limit", "x-user-limit-24hour-remaining", "x-user-limit-24hour-reset",
    "x-app-limit-24hour-limit", "x-app-limit-24hour-remaining", "x-app-limit-24hour-reset",
    "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy",  # Bluesky
    "retry-after",
)
REDACTED = "[redacted]"
READ_CHUNK = 16384


# A secret this long or longer is also found when its case changed, when white space or
# punctuation was put inside it, or when its characters were escaped (%41, &#65;, &#x41;, \u0041)
# or it was base64-encoded whole. Shorter ones are replaced as written only (they are not worth
# the over-redaction a loose match would cause).
FUZZY_MIN = 8
# What may sit between two characters of a quoted secret: white space and punctuation, a few of them.
_GAP = r"[^0-9A-Za-z%&#\\]{0,3}"


def _char_pattern(ch: str) -> str:
    code = ord(ch)
    forms = [re.escape(ch)]
    if code < 0x10000:
        forms += [f"%{code:02x}" if code < 0x100 else f"%u{code:04x}", f"&#0*{code};", f"&#x0*{code:x};",
                  f"\\\\u{code:04x}"]
    return "(?:" + "|".join(forms) + ")"


@functools.lru_cache(maxsize=256)
def _secret_pattern(secret: str) -> re.Pattern:
    chars = [ch for ch in secret if not ch.isspace()]
    fuzzy = _GAP.join(_char_pattern(ch) for ch in chars)
    encoded = {base64.b64encode(secret.encode()).decode().rstrip("="),
               base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=")}
    return re.compile("|".join([fuzzy, *(re.escape(e) for e in sorted(encoded))]), re.IGNORECASE)


def redact(text: str, secrets: list[str], *, marker: str = REDACTED) -> str:
    """Hide every secret: as written, as Python quotes it in error messages (a token with a newline
    appears escaped there), stripped of surrounding white space, and — for secrets of FUZZY_MIN
    characters or more — in any case, with white space or punctuation inside, or escaped/encoded
    (see _secret_pattern). The one redaction of every writer of evidence and notification error."""
    if not text:
        return text
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in {secret, secret.strip(), repr(secret)[1:-1], repr(secret.strip())[1:-1]}:
            if len(form) >= 4:
                text = text.replace(form, marker)
        if len(secret.strip()) >= FUZZY_MIN:
            text = _secret_pattern(secret.strip()).sub(marker, text)
    return text


# A platform's JSON deeper than this is a bad response: Python's parser would recurse until
# RecursionError (a traceback on every run) on a body of a few kilobytes of "[".
MAX_JSON_DEPTH = 64
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class TooDeep(ValueError):
    pass


def json_loads_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, after a linear scan that refuses nesting deeper than `max_depth` (TooDeep)."""
    if text.count("[") + text.count("{") > max_depth:  # only then can it be too deep
        depth = 0
        for match in _JSON_NESTING.finditer(text):
            token = match.group()
            if token in "[{":
                depth += 1
                if depth > max_depth:
                    raise TooDeep(f"JSON nested deeper than {max_depth} levels")
            elif token in "]}":
                depth -= 1
    return json.loads(text)


def url_path(url: str) -> str:
    return urlsplit(url).path or "/"


@dataclass
class HttpResult:
    """What came back: status, the headers worth keeping, the (capped) body and the time taken."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: int
    truncated: bool = False

    def json(self) -> Any:
        try:
            return json_loads_bounded(self.body.decode("utf-8"))
        except TooDeep:
            kind = self.headers.get("content-type", "no content type")[:80]
            raise ProbeError(
                FailureClass.BAD_RESPONSE,
                f"{self.method} {self.path} answered {self.status} ({kind}) with JSON nested deeper than "
                f"{MAX_JSON_DEPTH} levels",
                result=self,
            ) from None
        except (UnicodeDecodeError, ValueError):
            kind = self.headers.get("content-type", "no content type")[:80]
            what = f"a body cut at {self.max_note()}" if self.truncated else "a body that is not JSON"
            raise ProbeError(
                FailureClass.UNEXPECTED,
                f"{self.method} {self.path} answered {self.status} ({kind}) with {what}",
                result=self,
            ) from None

    def max_note(self) -> str:
        return f"{len(self.body)} bytes (the response size cap)"

    def error_text(self, limit: int = 300) -> str:
        """The platform's own error message: `error` (Mastodon, Bluesky), `detail` (X), the first of
        `errors[]` (X's v1.1-style `{"errors": [{"code", "message"}]}`), or the body."""
        try:
            data = json_loads_bounded(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):  # TooDeep is a ValueError
            data = None
        if isinstance(data, dict):
            for key in ("error", "detail", "message", "title"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value[:limit]
            errors = data.get("errors")
            first = errors[0] if isinstance(errors, list) and errors else None
            if isinstance(first, dict):
                for key in ("message", "detail", "title"):
                    value = first.get(key)
                    if isinstance(value, str) and value:
                        return value[:limit]
        text = self.body[:65536].decode("utf-8", "replace")
        if "html" in self.headers.get("content-type", "") or text.lstrip()[:1] == "<":
            # An HTML error page (a proxy's 502, a 404 page): its title, or its words without tags,
            # never the markup, which would end up quoted in an incident update.
            title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
            text = title.group(1) if title and title.group(1).strip() else re.sub(
                r"<(script|style)\b.*?</\1>|<[^>]*>", " ", text, flags=re.I | re.S)
            text = html.unescape(re.sub(r"\s+", " ", text))
        return text.strip()[:limit]

    def rate_limit(self) -> dict[str, str]:
        return {name: self.headers[name] for name in RATE_LIMIT_HEADERS if name in self.headers}


class Deadlines:
    """One thread per process that acts on deadlines as they pass: a request still running at its
    run's total deadline has its socket cut. One thread for every request in flight, instead of a
    timer thread started per request."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the thread does not follow a fork

    def _reset(self) -> None:
        self._heap: list[list] = []  # [when, seq, action or None once cancelled]
        self._condition = threading.Condition()
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def at(self, when: float, action: Callable[[], None]) -> list:
        """Call `action` once time.monotonic() passes `when`, unless cancelled; returns the handle."""
        entry = [when, next(self._sequence), action]
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="vigie-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._condition.notify()
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        entry[2] = None  # dropped when it comes up; an action already taken checks for itself

    def _loop(self) -> None:
        while True:
            with self._condition:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        action = heapq.heappop(self._heap)[2]
                        break
                    self._condition.wait(wait)
            try:
                action()
            except Exception:
                log.exception("a deadline action failed")


DEADLINES = Deadlines()
_sessions: dict[tuple, requests.Session] = {}
_sessions_lock = threading.Lock()


def _sessions_after_fork() -> None:
    # A forked pool process opens its own connections; a lock held by another thread at the fork
    # would never be released in the child.
    global _sessions_lock
    _sessions.clear()
    _sessions_lock = threading.Lock()


os.register_at_fork(after_in_child=_sessions_after_fork)


def shared_session(url: str) -> requests.Session:
    """The guarded session of `url`'s origin shared by every run in this process, so that runs
    against a platform reuse its connections instead of opening one each (a TCP handshake, and
    for HTTPS a TLS one, per run). It keeps no cookies: one run must not see another's. Sessions
    are per allowance too (VIGIE_ALLOW_PRIVATE_TARGETS): a kept connection was checked by the
    guard under the allowance of its session."""
    parts = urlsplit(url)
    key = (parts.scheme, parts.netloc.lower(), settings_allowance())
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            size = settings.VIGIE_RUNS_IN_FLIGHT
            session = _sessions[key] = guarded_session(pool_connections=4, pool_maxsize=size)
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        return session


@dataclass
class HttpSeam:
    """A requests session bound to one run: its deadline, its size cap, its secrets to hide.

    The deadline is total: when it passes, the socket of the request in flight is cut (Deadlines),
    so a server that drips its headers or body a byte at a time cannot hold a worker past it.
    Connections go through the SSRF guard (platforms.netguard). The session is the run's own, or one
    shared by the runs of a process (shared_session).
    """

    user_agent: str
    deadline: float  # time.monotonic() value after which nothing more is read
    max_bytes: int
    secrets: list[str] = field(default_factory=list)
    session: requests.Session | None = None

    def __post_init__(self) -> None:
        self._watch = SocketWatch()
        self._cut = False
        self._active = False
        self._lock = threading.Lock()
        if self.session is None:
            self.session = guarded_session()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def request(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        data: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        path = url_path(url)
        remaining = self.remaining()
        if remaining <= 0:
            raise ProbeError(FailureClass.TIMEOUT, f"no time left for {method} {path}")
        sent_headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if token:
            sent_headers["Authorization"] = f"Bearer {token}"
        sent_headers.update(headers or {})
        started = time.monotonic()
        with self._lock:
            self._cut, self._active = False, True
        at_deadline = DEADLINES.at(self.deadline, self._at_deadline)
        try:
            with watching(self._watch):
                response = self.session.request(
                    method, url, data=data, json=json_body, headers=sent_headers,
                    timeout=(min(remaining, 5.0), remaining), allow_redirects=False, stream=True,
                )
            try:
                body, truncated = self._read_capped(response, method, path)
            finally:
                # Read to its end, the connection went back to its pool already; otherwise (cut,
                # truncated) it is closed here.
                response.close()
            if self._cut:  # the cut socket looked like the end of a body without a length
                raise ProbeError(FailureClass.TIMEOUT, self._timeout_text(method, path, started))
        except ProbeError:
            raise
        except TargetRefused as exc:
            raise ProbeError(FailureClass.CONNECT, f"{method} {path} refused by the SSRF guard: {exc}; "
                             "allow it with VIGIE_ALLOW_PRIVATE_TARGETS", permanent=True) from None
        except Exception as exc:
            raise self._classify(exc, method, path, started, urlsplit(url).netloc) from None
        finally:
            DEADLINES.cancel(at_deadline)
            with self._lock:
                # Its socket may serve another run's request next: this run's deadline is not its.
                self._active = False
                self._watch.clear()
        kept = {k.lower(): v for k, v in response.headers.items()}
        return HttpResult(method, path, response.status_code, kept, body, _ms(started), truncated)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def _reason(self, exc: BaseException) -> str:
        return _short(self.redact(str(exc)))

    def _at_deadline(self) -> None:
        with self._lock:
            if self._active:
                self._cut = True
                self._watch.cut()

    def _timeout_text(self, method: str, path: str, started: float) -> str:
        return f"{method} {path} timed out after {_ms(started)} ms (total deadline)"

    def _classify(self, exc: Exception, method: str, path: str, started: float, where: str) -> ProbeError:
        """A transport failure as a ProbeError: after the deadline cut, whatever broke is a timeout.
        The message names the innermost cause (urllib3 and requests wrap it several deep)."""
        if self._cut or _innermost(exc, (ReadTimeoutError, requests.Timeout, TimeoutError)):
            return ProbeError(FailureClass.TIMEOUT, self._timeout_text(method, path, started))
        if isinstance(exc, requests.exceptions.InvalidHeader):
            # Its message quotes the header, token included: say what is wrong without it.
            return ProbeError(FailureClass.AUTH, f"{method} {path} not sent: a header value is invalid "
                              "(a token with white space or a line break?)", permanent=True)
        tls = _innermost(exc, (ssl.SSLError,)) or _innermost(exc, (requests.exceptions.SSLError, SSLError))
        if tls is not None:
            return ProbeError(FailureClass.CONNECT, f"{method} {path} TLS handshake failed: {self._reason(tls)}")
        if isinstance(exc, (DecodeError, requests.exceptions.ContentDecodingError)):
            return ProbeError(FailureClass.UNEXPECTED, f"{method} {path} answered a body that cannot be decoded "
                              f"(its Content-Encoding is wrong): {self._reason(exc)}")
        if isinstance(exc, ProtocolError):  # raised while reading the body
            return ProbeError(FailureClass.CONNECT, f"{method} {path} connection dropped while reading the body: "
                              f"{self._reason(exc)}")
        if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            cause = _innermost(exc, (OSError, HTTPException)) or exc
            return ProbeError(FailureClass.CONNECT, f"{method} {path} failed to connect to {self.redact(where)}: "
                              f"{self._reason(cause)}")
        if isinstance(exc, (requests.RequestException, HTTPError)):
            return ProbeError(FailureClass.UNEXPECTED, f"{method} {path} failed: {self._reason(exc)}")
        raise exc

    def _read_capped(self, response: requests.Response, method: str, path: str) -> tuple[bytes, bool]:
        """At most max_bytes of the *decoded* body: urllib3 inflates only what each read asks for,
        so a gzip bomb is never decompressed whole."""
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.raw.read(min(READ_CHUNK, self.max_bytes + 1 - size), decode_content=True)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return b"".join(chunks)[: self.max_bytes], True
            if time.monotonic() > self.deadline:
                raise ProbeError(FailureClass.TIMEOUT, f"{method} {path} body still arriving at the deadline")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "…"


def _innermost(exc: BaseException | None, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """The deepest exception of these types in the chain (requests and urllib3 wrap several deep)."""
    found = None
    seen = 0
    while exc is not None and seen < 12:
        if isinstance(exc, types):
            found = exc
        reason = getattr(exc, "reason", None)
        exc = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else (
            reason if isinstance(reason, BaseException) else exc.__cause__ or exc.__context__)
        seen += 1
    return found
