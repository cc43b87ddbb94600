"""The one outbound HTTP seam of every adapter: bounded in time and size, secrets redacted.

Every call has a total deadline (not only a socket timeout), reads at most a capped number of
bytes, follows no redirects, and turns transport failures into ProbeError with a failure class.
Tests that must not touch a network mock `requests` here and nowhere else.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from probes.errors import ProbeError
from probes.models import FailureClass

RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",  # Mastodon (ISO reset)
    "x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset",  # X (Unix reset)
    "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy",  # Bluesky
    "retry-after",
)
REDACTED = "[redacted]"


def redact(text: str, secrets: list[str]) -> str:
    """Hide every secret, also as Python quotes it in error messages (a token with a newline
    appears escaped there) and stripped of surrounding white space."""
    for secret in secrets:
        for form in {secret, secret.strip(), repr(secret)[1:-1], repr(secret.strip())[1:-1]}:
            if len(form) >= 4:
                text = text.replace(form, REDACTED)
    return text


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
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ProbeError(
                FailureClass.UNEXPECTED,
                f"{self.method} {self.path} answered {self.status} with a body that is not JSON",
                result=self,
            ) from None

    def error_text(self, limit: int = 300) -> str:
        """The platform's own error message: `error` (Mastodon, Bluesky), `detail` (X), or the body."""
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        if isinstance(data, dict):
            for key in ("error", "detail", "message", "title"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value[:limit]
        return self.body[:limit].decode("utf-8", "replace").strip()

    def rate_limit(self) -> dict[str, str]:
        return {name: self.headers[name] for name in RATE_LIMIT_HEADERS if name in self.headers}


@dataclass
class HttpSeam:
    """A requests session bound to one run: its deadline, its size cap, its secrets to hide."""

    user_agent: str
    deadline: float  # time.monotonic() value after which nothing more is read
    max_bytes: int
    secrets: list[str] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)

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
        try:
            response = self.session.request(
                method, url, data=data, json=json_body, headers=sent_headers,
                timeout=(min(remaining, 5.0), remaining), allow_redirects=False, stream=True,
            )
            try:
                body, truncated = self._read_capped(response, method, path)
            finally:
                response.close()
        except ProbeError:
            raise
        except requests.exceptions.InvalidHeader:
            # Its message quotes the header, token included: say what is wrong without it.
            raise ProbeError(FailureClass.AUTH, f"{method} {path} not sent: a header value is invalid "
                             "(a token with white space or a line break?)", permanent=True) from None
        except requests.Timeout:
            raise ProbeError(FailureClass.TIMEOUT, f"{method} {path} timed out after {_ms(started)} ms") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            if _is_read_timeout(exc):  # requests wraps a timeout while reading the body
                raise ProbeError(FailureClass.TIMEOUT, f"{method} {path} body timed out after {_ms(started)} ms") \
                    from None
            raise ProbeError(FailureClass.CONNECT, f"{method} {path} failed to connect: {self._reason(exc)}") from None
        except requests.RequestException as exc:
            raise ProbeError(FailureClass.UNEXPECTED, f"{method} {path} failed: {self._reason(exc)}") from None
        kept = {k.lower(): v for k, v in response.headers.items()}
        return HttpResult(method, path, response.status_code, kept, body, _ms(started), truncated)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def _reason(self, exc: Exception) -> str:
        return _short(self.redact(str(exc)))

    def _read_capped(self, response: requests.Response, method: str, path: str) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=16384):
            if time.monotonic() > self.deadline:
                raise ProbeError(FailureClass.TIMEOUT, f"{method} {path} body still arriving at the deadline")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return b"".join(chunks)[: self.max_bytes], True
        return b"".join(chunks), False


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "…"


def _is_read_timeout(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (ReadTimeoutError, requests.Timeout)):
            return True
        exc = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc.__context__
        seen += 1
    return False
