"""Scripted HTTP probes: any platform with an HTTP API, as a sequence of steps (platform kind "http").

A probe's `script` (from the configuration file's `steps:` and `cleanup:`) is::

    steps:
      - name: create note                       # shown in the run's steps
        method: POST                            # default GET
        url: /api/notes                         # relative to the platform's base URL, or absolute
        headers: {Authorization: "Bearer ${token}"}
        json: {text: "probe ${run_key}"}        # or body: "raw text"
        expect:                                 # all optional; status defaults to any 2xx
          status: [200, 201]
          json: {"$.id": {exists: true}, "$.text": "probe ${run_key}", "$.tags": {contains: "x"}}
          body_contains: "created"
          max_ms: 2000
        extract: {note_id: "$.id"}              # a variable for later steps and cleanup
    cleanup:                                    # each runs once its variables exist, even after a
      - {method: DELETE, url: "/api/notes/${note_id}"}   # failure; 2xx or 404 is success

Variables: `${token}` and `${partner_token}` (the platform accounts' tokens, never stored or
shown), `${run_key}`, and every name extracted by an earlier step. Assertions in the spirit of
Gatus' conditions. Failure classes: a status other than expected is classified like any platform's
(401 auth, 429 rate limited or over quota, 5xx server error, other 4xx rejected), except that a
2xx where the script expects a refusal (say 422 for an over-long post) is an `invariant` failure:
a limits probe is a script too. A JSON path or text that does not match is `unexpected`; a step
slower than its `max_ms` is `timeout`.

Each cleanup step goes on the artifact ledger as soon as its variables exist, so a crash, a
timeout or a failed cleanup is retried later like every other artifact; the ledger keeps the
step's index and the extracted values it needs (never a token), at most 200 characters.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from platforms.adapters.base import BaseAdapter, CreatedArtifact, reset_is_far
from platforms.errors import ProbeError
from platforms.http import HttpResult
from platforms.vocabulary import Action, Artifact, FailureClass

BUILTINS = ("token", "partner_token", "run_key")
SECRET_VARIABLES = ("token", "partner_token")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
STEP_KEYS = {"name", "method", "url", "headers", "json", "body", "expect", "extract"}
EXPECT_KEYS = {"status", "json", "body_contains", "max_ms"}
MATCHERS = {"exists", "contains"}
MAX_STEPS = 20
MAX_LEDGER_ID = 200
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATH = re.compile(r"^\$((\.[A-Za-z_][A-Za-z0-9_-]*)|(\[\d+\]))*$")
PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


# --- validation (used by the configuration file) ---------------------------------------------

Problem = tuple[tuple, str]  # (path below the script, e.g. ("steps", 0, "url"), what is wrong)


def script_problems(script: Any, where: str = "script") -> list[str]:
    """Every problem of a script as text (`script.steps[0].url: required …`); [] when valid."""
    return [f"{where}{_dotted(path)}: {message}" for path, message in script_issues(script)]


def _dotted(path: tuple) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


def script_issues(script: Any) -> list[Problem]:
    """Every problem of a script, each with its path (so the configuration can name its line)."""
    if not isinstance(script, dict):
        return [((), "expected a mapping with steps and cleanup")]
    problems: list[Problem] = []
    for key in sorted(set(script) - {"steps", "cleanup"}):
        problems.append(((key,), "unknown key; expected steps, cleanup"))
    steps, cleanup = script.get("steps"), script.get("cleanup", [])
    if not isinstance(steps, list) or not steps:
        problems.append((("steps",), "expected a non-empty list of steps"))
        steps = []
    if not isinstance(cleanup, list):
        problems.append((("cleanup",), "expected a list of steps"))
        cleanup = []
    if len(steps) + len(cleanup) > MAX_STEPS:
        problems.append(((), f"at most {MAX_STEPS} steps in all, got {len(steps) + len(cleanup)}"))
    known = set(BUILTINS)
    for i, step in enumerate(steps):
        problems += _step_issues(step, ("steps", i), known, cleanup_step=False)
        if isinstance(step, dict) and isinstance(step.get("extract"), dict):
            known |= {name for name in step["extract"] if isinstance(name, str)}
    for i, step in enumerate(cleanup):
        problems += _step_issues(step, ("cleanup", i), known, cleanup_step=True)
    return problems


def _step_issues(step: Any, where: tuple, known: set[str], *, cleanup_step: bool) -> list[Problem]:
    if not isinstance(step, dict):
        return [(where, "expected a mapping with at least url")]
    problems = [((*where, key), f"unknown key; expected one of {', '.join(sorted(STEP_KEYS))}")
                for key in sorted(set(step) - STEP_KEYS, key=str)]
    method = step.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        problems.append(((*where, "method"), f"expected one of {', '.join(METHODS)}, got {method!r}"))
    url = step.get("url")
    if not isinstance(url, str) or not url.strip():
        problems.append(((*where, "url"), "required, a path (/api/notes) or an http(s) URL"))
    elif not (url.startswith("/") or re.match(r"^https?://[^/\s]+", url)):
        problems.append(((*where, "url"), f"{url!r} is neither a path starting with / nor an http(s) URL"))
    headers = step.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        problems.append(((*where, "headers"), "expected a mapping of header names to text"))
    elif any(re.search(r"auth|token|key|secret|cookie", k, re.I) and not VARIABLE.search(v)
             for k, v in headers.items()):
        # Scripts are shown in the admin and the API: a credential written in them would be too.
        problems.append(((*where, "headers"), "a credential must not be written in the script; give it as the "
                                              "platform account's token and write ${token} (or ${partner_token})"))
    if "json" in step and "body" in step:
        problems.append((where, "json and body are exclusive; use one"))
    if "body" in step and not isinstance(step["body"], str):
        problems.append(((*where, "body"), "expected text"))
    for name in sorted(_variables(step) - known):
        later = "" if cleanup_step else " (is it extracted by a later step?)"
        problems.append((where, f"unknown variable ${{{name}}}{later}; known: {', '.join(sorted(known))}"))
    expect = step.get("expect", {})
    if not isinstance(expect, dict):
        problems.append(((*where, "expect"), "expected a mapping"))
    else:
        problems += _expect_issues(expect, (*where, "expect"))
    extract = step.get("extract", {})
    if cleanup_step and extract:
        problems.append(((*where, "extract"), "cleanup steps extract nothing"))
    elif not isinstance(extract, dict):
        problems.append(((*where, "extract"), "expected a mapping of variable names to JSON paths"))
    else:
        for name, path in extract.items():
            if not isinstance(name, str) or not NAME.match(name) or name in BUILTINS:
                problems.append(((*where, "extract"), f"{name!r} is not a usable variable name "
                                                      f"(letters, digits, _; not {', '.join(BUILTINS)})"))
            elif not isinstance(path, str) or not PATH.match(path):
                problems.append(((*where, "extract", name), f"{path!r} is not a JSON path like $.id"))
    return problems


def _expect_issues(expect: dict, where: tuple) -> list[Problem]:
    problems = [((*where, key), f"unknown key; expected one of {', '.join(sorted(EXPECT_KEYS))}")
                for key in sorted(set(expect) - EXPECT_KEYS, key=str)]
    status = expect.get("status")
    statuses = status if isinstance(status, list) else [status] if status is not None else []
    if not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses) or \
            (isinstance(status, list) and not status):
        problems.append(((*where, "status"), f"expected an HTTP status (100-599) or a list of them, got {status!r}"))
    paths = expect.get("json", {})
    if not isinstance(paths, dict):
        problems.append(((*where, "json"), "expected a mapping of JSON paths to values"))
        paths = {}
    for path, matcher in paths.items():
        if not isinstance(path, str) or not PATH.match(path):
            problems.append(((*where, "json"), f"{path!r} is not a JSON path like $.id or $.items[0].id"))
        elif isinstance(matcher, dict) and (len(matcher) != 1 or set(matcher) - MATCHERS):
            problems.append(((*where, "json", path), "a matcher is {exists: true|false} or {contains: value}; "
                                                     "any other value is compared as is"))
    if "body_contains" in expect and not isinstance(expect["body_contains"], str):
        problems.append(((*where, "body_contains"), "expected text"))
    max_ms = expect.get("max_ms")
    if max_ms is not None and (isinstance(max_ms, bool) or not isinstance(max_ms, int) or not 1 <= max_ms <= 600_000):
        problems.append(((*where, "max_ms"), f"expected whole milliseconds, 1-600000, got {max_ms!r}"))
    return problems


def _variables(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(VARIABLE.findall(value))
    if isinstance(value, dict):
        return set().union(*(_variables(k) | _variables(v) for k, v in value.items() if k != "extract")) \
            if value else set()
    if isinstance(value, list):
        return set().union(*(_variables(v) for v in value)) if value else set()
    return set()


# --- JSON paths ---------------------------------------------------------------------------------

_MISSING = object()


def json_path(data: Any, path: str) -> Any:
    """The value at `$.a.b[0]`, or _MISSING."""
    for name, index in PATH_PART.findall(path[1:]):
        if name:
            if not isinstance(data, dict) or name not in data:
                return _MISSING
            data = data[name]
        else:
            if not isinstance(data, list) or int(index) >= len(data):
                return _MISSING
            data = data[int(index)]
    return data


# --- the adapter --------------------------------------------------------------------------------

class ScriptedAdapter(BaseAdapter):
    """Runs the probe's script; the action names what the script stands for (post, read …)."""

    kind = "http"
    actions = frozenset(Action.values)
    needs_prober = False

    def execute(self, action: str) -> None:
        script = self.ctx.script or {}
        if not script.get("steps"):
            raise ProbeError(FailureClass.UNEXPECTED, "this probe has no script: give it steps in the configuration",
                             permanent=True)
        variables = self._builtins()
        recorded: set[int] = set()
        self._record_ready_cleanups(script, variables, recorded)  # those that need no extracted value
        for i, step in enumerate(script["steps"]):
            try:
                result = self._call(step, variables, step.get("name") or f"step {i + 1}")
                self._check(step, result, variables)
            finally:
                # Even a failed step may have created something: what can be cleaned, will be.
                self._record_ready_cleanups(script, variables, recorded)

    def undo(self, artifact: CreatedArtifact) -> None:
        index, _, encoded = artifact.remote_id.partition(":")
        cleanup = (self.ctx.script or {}).get("cleanup") or []
        if not index.isdigit() or int(index) >= len(cleanup):
            raise ProbeError(FailureClass.UNEXPECTED, f"cleanup step {index} is no longer in the script",
                             permanent=True)
        step = cleanup[int(index)]
        variables = {**self._builtins(), **json.loads(encoded or "{}")}
        result = self._call(step, variables, step.get("name") or f"cleanup {int(index) + 1}")
        expected = step.get("expect", {}).get("status")
        if expected is None and (200 <= result.status < 300 or result.status == 404):
            return  # gone already is as good as removed
        self._check(step, result, variables)

    # --- helpers -----------------------------------------------------------------------------
    def _builtins(self) -> dict[str, str]:
        partner = self.partner.token if self.partner else ""
        return {"token": self.prober.token, "partner_token": partner, "run_key": self.ctx.run_key}

    def _record_ready_cleanups(self, script: dict, variables: dict[str, str], recorded: set[int]) -> None:
        for i, step in enumerate(script.get("cleanup") or []):
            needed = _variables(step)
            if i in recorded or not needed <= set(variables):
                continue
            kept = {name: variables[name] for name in sorted(needed) if name not in SECRET_VARIABLES}
            remote_id = f"{i}:{json.dumps(kept, separators=(',', ':'))}"
            recorded.add(i)
            if len(remote_id) > MAX_LEDGER_ID:
                self.ctx.facts.setdefault("cleanup_not_recorded", []).append(
                    f"cleanup step {i + 1}: its values are too long for the ledger ({len(remote_id)} characters)")
                continue
            self.ctx.record_artifact(CreatedArtifact(Artifact.Kind.SCRIPTED, remote_id, "prober"))

    def _call(self, step: dict, variables: dict[str, str], name: str) -> HttpResult:
        url = _substitute(step["url"], variables)
        if url.startswith("/"):
            url = self.base_url + url
        headers = {k: _substitute(v, variables) for k, v in (step.get("headers") or {}).items()}
        kwargs: dict[str, Any] = {"headers": headers}
        if "json" in step:
            kwargs["json_body"] = _substitute(step["json"], variables)
        elif "body" in step:
            kwargs["data"] = _substitute(step["body"], variables).encode()
        return self.ctx.call(name, str(step.get("method", "GET")).upper(), url, **kwargs)

    def _check(self, step: dict, result: HttpResult, variables: dict[str, str]) -> None:
        expect = step.get("expect") or {}
        status = expect.get("status")
        wanted = status if isinstance(status, list) else [status] if status is not None else None
        where = f"{result.method} {result.path}"
        ok = result.status in wanted if wanted else 200 <= result.status < 300
        if not ok:
            text = self.ctx.http.redact(result.error_text(limit=2000))[:300]
            if wanted and all(w >= 400 for w in wanted) and 200 <= result.status < 300:
                # Accepted what must be refused: keep what it made, so that cleanup removes it.
                try:
                    self._extract(step, result.json(), variables, where, result)
                except ProbeError:
                    pass
                raise ProbeError(FailureClass.INVARIANT, f"{where} accepted with {result.status} what must be "
                                 f"refused (expected {', '.join(map(str, wanted))})", result=result)
            failure = classify(result)
            raise ProbeError(failure, f"{where} answered {result.status}, expected "
                             f"{', '.join(map(str, wanted)) if wanted else 'a 2xx'}: {text}", result=result,
                             permanent=failure in (FailureClass.AUTH, FailureClass.REJECTED))
        paths = dict(expect.get("json") or {})
        if 200 <= result.status < 300:
            data = result.json() if paths or step.get("extract") else None
            # Values first: what a step created can then be cleaned up even if an assertion fails.
            self._extract(step, data, variables, where, result)
        else:
            # An expected refusal made nothing: its values (the id of what it would have made) are
            # missing, and the cleanup steps that need them do not run.
            data = result.json() if paths else None
        max_ms = expect.get("max_ms")
        if max_ms is not None and result.elapsed_ms > max_ms:
            raise ProbeError(FailureClass.TIMEOUT, f"{where} took {result.elapsed_ms} ms, more than {max_ms} ms",
                             result=result)
        if "body_contains" in expect:
            needle = _substitute(expect["body_contains"], variables)
            if needle not in result.body.decode("utf-8", "replace"):
                raise ProbeError(FailureClass.UNEXPECTED, f"{where}: the body does not contain {needle!r}",
                                 result=result)
        for path, matcher in paths.items():
            _assert_path(data, path, _substitute(matcher, variables), where, result)

    @staticmethod
    def _extract(step: dict, data: Any, variables: dict[str, str], where: str, result: HttpResult) -> None:
        for name, path in (step.get("extract") or {}).items():
            value = json_path(data, path)
            if value is _MISSING or isinstance(value, (dict, list)):
                raise ProbeError(FailureClass.UNEXPECTED, f"{where}: nothing to extract at {path} for ${{{name}}}",
                                 result=result)
            variables[name] = str(value)

def _assert_path(data: Any, path: str, matcher: Any, where: str, result: HttpResult) -> None:
    value = json_path(data, path)
    if isinstance(matcher, dict) and "exists" in matcher:
        if (value is not _MISSING) != bool(matcher["exists"]):
            raise ProbeError(FailureClass.UNEXPECTED, f"{where}: {path} {'is missing' if matcher['exists'] else 'exists'}",
                             result=result)
        return
    if isinstance(matcher, dict) and "contains" in matcher:
        if not isinstance(value, (str, list)) or matcher["contains"] not in value:
            raise ProbeError(FailureClass.UNEXPECTED, f"{where}: {path} does not contain {matcher['contains']!r}",
                             result=result)
        return
    if value is _MISSING or value != matcher:
        shown = "missing" if value is _MISSING else repr(value)[:80]
        raise ProbeError(FailureClass.UNEXPECTED, f"{where}: {path} is {shown}, expected {matcher!r}", result=result)


def _substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    return value


def classify(result: HttpResult, *, now: datetime | None = None) -> str:
    """A status that is not the expected one, as a failure class, for any HTTP API."""
    status = result.status
    if status == 401:
        return FailureClass.AUTH
    if status == 429:
        return FailureClass.QUOTA_EXCEEDED if _retry_is_far(result, now) else FailureClass.RATE_LIMITED
    if status >= 500:
        return FailureClass.SERVER_ERROR
    if 300 <= status < 400 or status < 200 or 200 <= status < 300:
        return FailureClass.UNEXPECTED
    return FailureClass.REJECTED


def _retry_is_far(result: HttpResult, now: datetime | None) -> bool:
    """Any API: Retry-After, or whichever of the common reset headers it sends."""
    headers = ("retry-after", "x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset")
    return any(reset_is_far(result, name, now) for name in headers)

