"""Request/response types and the regex route table shared by the Mastodon API and control handlers."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Callable
from urllib.parse import parse_qs

from .common import ApiError
from .entities import Account
from .faults import Effects
from .state import SandboxState

PARSE_ERROR = "Error occurred while parsing request parameters"
TRUE_WORDS = {"1", "true", "t", "on", "yes", "y"}
FALSE_WORDS = {"0", "false", "f", "off", "no", "n", ""}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    state: SandboxState
    match: dict[str, str] = field(default_factory=dict)
    account: Account | None = None
    effects: Effects = field(default_factory=Effects)
    _params: dict[str, Any] | None = None
    _params_error: str | None = None

    def bearer(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @property
    def params(self) -> dict[str, Any]:
        """Query and body parameters merged (body wins), like Rails. Parsing errors are kept, not raised,
        so that scoping a request (which reads `visibility`) never fails; handlers call `require_params`."""
        if self._params is None:
            params: dict[str, Any] = {k: v if k.endswith("[]") else v[-1] for k, v in self.query.items()}
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if self.body:
                try:
                    if content_type.endswith("json"):
                        decoded = json.loads(self.body.decode("utf-8"))
                        if not isinstance(decoded, dict):
                            raise ValueError("JSON body must be an object")
                        params.update(decoded)
                    else:  # Mastodon clients send form-urlencoded bodies
                        form = parse_qs(self.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
                        params.update({k: v if k.endswith("[]") else v[-1] for k, v in form.items()})
                except (ValueError, UnicodeDecodeError):
                    self._params_error = PARSE_ERROR
            self._params = params
        return self._params

    def require_params(self) -> dict[str, Any]:
        params = self.params
        if self._params_error:
            raise ApiError(400, self._params_error)
        return params

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.require_params().get(name, default)
        if value is None:
            return None
        if isinstance(value, list):
            value = value[-1] if value else default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float, str)):
            return str(value)
        raise ApiError(400, f"Invalid value for parameter {name}")

    def flag(self, name: str, default: bool) -> bool:
        value = self.require_params().get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else default

    def strings(self, name: str) -> list[str] | None:
        value = self.require_params().get(name + "[]", self.require_params().get(name))
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        return [str(v) for v in items if isinstance(v, (str, int))]


JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Response:
    """A JSON body (any JSON-ready value), or an HTML page (a str with `content_type` text/html)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


Scope = Callable[[Request], "tuple[str | None, str]"]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Request], Response]
    auth: str  # "user" (bearer required), "public" (none), "control" (control token)
    scope: Scope  # -> (fault action or None, op: "create" | "undo" | "read" | "other")
    families: tuple[str, ...] = ()  # rate-limit families counted on top of "api"


def route(method: str, pattern: str, handler: Callable[[Request], Response], *, auth: str = "user",
          scope: Scope = lambda req: (None, "read"), families: tuple[str, ...] = ()) -> Route:
    return Route(method, re.compile(f"^{pattern}$"), handler, auth, scope, families)


def find_route(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for candidate in routes:
        match = candidate.pattern.match(path)
        if match and candidate.method == method:
            return candidate, match.groupdict()
    return None, {}
