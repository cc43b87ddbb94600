"""Fault model: validation of fault specs, matching by action and location, and combined effects."""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .common import iso_ms

# "slow" is the only kind with a parameter, written slow:<ms>.
# delete_lost: a DELETE of a status answers 200 but the status stays (a concurrent background write
# resurrected it, as seen on Takahē).
# fanout_stalled: the background worker that delivers posts to followers' home timelines is stopped:
# posts are accepted and readable by their author, but reach no follower until the fault ends (the
# backlog is then delivered). The worker is platform-wide: the fault's location is ignored.
KINDS = ("quota_exceeded", "read_only", "server_error", "slow", "drop", "accept_overlong", "delete_lost",
         "fanout_stalled")
KINDS_DISPLAY = ("quota_exceeded", "read_only", "server_error", "slow:<ms>", "drop", "accept_overlong",
                 "delete_lost", "fanout_stalled")
ACTIONS = ("post", "repost", "follow", "dm", "read", "*")
WRITE_ACTIONS = ("post", "repost", "follow", "dm")
# Which actions each kind can affect at all; a fault that could never apply is refused rather than
# silently accepted, so a typo-level mistake does not look like "the sandbox ignores my fault".
KIND_ACTIONS = {
    "quota_exceeded": WRITE_ACTIONS + ("*",),
    "read_only": WRITE_ACTIONS + ("*",),
    "accept_overlong": ("post", "dm", "*"),
    "delete_lost": ("post", "dm", "*"),
    "fanout_stalled": ("post", "*"),
}
FIELDS = ("kind", "action", "location", "duration_s", "official_ack_s")
LOCATION_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
# Vigie's probes send e.g. "Vigie/0.1 (probe; location=atlanta; +https://status.example)".
UA_LOCATION_RE = re.compile(r"(?:^|[\s(;,])location=([A-Za-z0-9_-]{1,64})(?![A-Za-z0-9_-])")
MAX_SLOW_MS = 10 * 60 * 1000
MAX_DURATION_S = 30 * 24 * 3600
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class FaultSpecError(ValueError):
    """A bad fault spec; `field` names the offending input so that callers can point at it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def did_you_mean(word: str, options: tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for a near miss, else ''."""
    matches = difflib.get_close_matches(word.lower(), options, n=1, cutoff=0.5)
    if not matches and "_" not in word:
        # "readonly" / "quota" style near misses: compare without separators too.
        squashed = {o.replace("_", ""): o for o in options}
        matches = [squashed[m] for m in difflib.get_close_matches(word.lower(), squashed, n=1, cutoff=0.5)]
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def parse_kind(value: Any) -> tuple[str, int | None]:
    """'slow:3000' -> ('slow', 3000); 'drop' -> ('drop', None)."""
    allowed = ", ".join(KINDS_DISPLAY)
    if not isinstance(value, str) or not value.strip():
        raise FaultSpecError("kind", f"kind is required; one of {allowed}")
    value = value.strip()
    name, sep, param = value.partition(":")
    if name == "slow":
        if not sep or not re.fullmatch(r"[0-9]{1,9}", param) or int(param) <= 0:
            raise FaultSpecError("kind", "kind 'slow' needs a positive whole number of milliseconds, e.g. slow:3000")
        if int(param) > MAX_SLOW_MS:
            raise FaultSpecError("kind", f"slow delay must be at most {MAX_SLOW_MS} ms, got {param}")
        return "slow", int(param)
    if name not in KINDS or sep:
        raise FaultSpecError("kind", f"unknown kind '{value}'{did_you_mean(name, KINDS)}; allowed: {allowed}")
    return name, None


def parse_action(value: Any, kind: str) -> str:
    allowed = ", ".join(ACTIONS)
    if not isinstance(value, str) or not value.strip():
        raise FaultSpecError("action", f"action is required; one of {allowed}")
    value = value.strip()
    if value not in ACTIONS:
        raise FaultSpecError("action", f"unknown action '{value}'{did_you_mean(value, ACTIONS)}; allowed: {allowed}")
    if kind in KIND_ACTIONS and value not in KIND_ACTIONS[kind]:
        raise FaultSpecError("action", f"kind '{kind}' cannot affect action '{value}'; "
                                       f"allowed for {kind}: {', '.join(KIND_ACTIONS[kind])}")
    return value


def validate_spec(data: Any) -> dict[str, Any]:
    """Check a fault spec (the control endpoint's JSON body); return it normalised.

    Raises FaultSpecError naming the field and the allowed values.
    """
    if not isinstance(data, dict):
        raise FaultSpecError("body", "body must be a JSON object with fields " + ", ".join(FIELDS))
    for key in data:
        if key not in FIELDS:
            raise FaultSpecError(str(key), f"unknown field '{key}'{did_you_mean(str(key), FIELDS)}; "
                                           f"allowed fields: {', '.join(FIELDS)}")
    kind, delay_ms = parse_kind(data.get("kind"))
    action = parse_action(data.get("action"), kind)
    location = data.get("location")
    if location is not None:
        if not isinstance(location, str) or not LOCATION_RE.match(location):
            raise FaultSpecError("location", f"location must match {LOCATION_RE.pattern} "
                                             f"(lowercase letters, digits, '_' or '-', e.g. atlanta), got {location!r}")
    duration = data.get("duration_s")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration):
            raise FaultSpecError("duration_s", f"duration_s must be a positive number of seconds, got {duration!r}")
        if duration <= 0 or duration > MAX_DURATION_S:
            raise FaultSpecError("duration_s", f"duration_s must be > 0 and at most {MAX_DURATION_S} "
                                               f"(30 days), got {duration!r}")
    # When the sandbox's official page acknowledges this fault: seconds after it starts, or "never"
    # (absent: the page's own setting, see sandbox/official.py).
    ack = data.get("official_ack_s")
    if ack is not None and ack != "never" and (isinstance(ack, bool) or not isinstance(ack, (int, float))
                                               or not math.isfinite(ack) or not 0 <= ack <= MAX_DURATION_S):
        raise FaultSpecError("official_ack_s", f"official_ack_s must be a number of seconds (0 to 30 days) or "
                                               f"\"never\", got {ack!r}")
    return {"kind": f"slow:{delay_ms}" if delay_ms else kind, "action": action, "location": location,
            "duration_s": duration, "official_ack_s": ack}


def parse_duration(text: str) -> float:
    """'90s' -> 90, '20m' -> 1200, '1h30m' -> 5400. Raises ValueError with a readable message."""
    cleaned = text.strip().lower()
    pos, total = 0, 0.0
    for match in DURATION_RE.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise ValueError(f"bad duration '{text}': use a number with a unit s, m, h or d, e.g. 90s, 20m, 1h, 1h30m")
    if total <= 0 or total > MAX_DURATION_S:
        raise ValueError(f"bad duration '{text}': must be more than 0 and at most 30 days")
    return total


def location_from_user_agent(user_agent: str | None) -> str | None:
    """The probe location named in a User-Agent ('… location=atlanta; …'), lowercased, or None."""
    match = UA_LOCATION_RE.search(user_agent or "")
    return match.group(1).lower() if match else None


@dataclass
class Fault:
    id: str
    kind: str
    action: str
    location: str | None
    created_at: datetime
    expires_at: datetime | None = None
    official_ack_s: float | str | None = None  # None: the official page's setting; "never"

    @property
    def base_kind(self) -> str:
        return self.kind.partition(":")[0]

    @property
    def delay_ms(self) -> int:
        return int(self.kind.partition(":")[2] or 0) if self.base_kind == "slow" else 0

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def matches(self, action: str | None, location: str | None) -> bool:
        """Scope check: `*` matches every endpoint; a located fault needs the same location in the UA."""
        if self.action != "*" and self.action != action:
            return False
        return self.location is None or self.location == location

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "action": self.action,
            "location": self.location,
            "created_at": iso_ms(self.created_at),
            "expires_at": iso_ms(self.expires_at) if self.expires_at else None,
            "official_ack_s": self.official_ack_s,
        }


def make_fault(fault_id: str, spec: dict[str, Any], now: datetime) -> Fault:
    duration = spec.get("duration_s")
    expires = now + timedelta(seconds=duration) if duration else None
    return Fault(fault_id, spec["kind"], spec["action"], spec.get("location"), now, expires,
                 spec.get("official_ack_s"))


@dataclass
class Effects:
    """What the active faults do to one request. `op` decides which kinds bite:

    read_only refuses creates and undos, quota_exceeded only creates (undo stays possible, as in the
    Twitter outage), drop / server_error / slow hit everything in scope.
    """

    drop: bool = False
    server_error: bool = False
    read_only: bool = False
    quota_exceeded: bool = False
    accept_overlong: bool = False
    delete_lost: bool = False
    delay_ms: int = 0
    matched: list[str] = field(default_factory=list)

    @property
    def refusal(self) -> str | None:
        """The single refusal to answer with, by precedence drop > server_error > read_only > quota."""
        for name in ("drop", "server_error", "read_only", "quota_exceeded"):
            if getattr(self, name):
                return name
        return None


def resolve(faults: list[Fault], action: str | None, op: str, location: str | None) -> Effects:
    """Combine the faults in scope for a request of `action` ('post'…, or None) and `op`
    ('create', 'undo', 'read' or 'other')."""
    effects = Effects()
    for fault in faults:
        if not fault.matches(action, location):
            continue
        kind = fault.base_kind
        if kind == "drop":
            effects.drop = True
        elif kind == "server_error":
            effects.server_error = True
        elif kind == "slow":
            # Overlapping slow faults do not add up: latency is the worst one, not the sum.
            effects.delay_ms = max(effects.delay_ms, fault.delay_ms)
        elif kind == "read_only" and op in ("create", "undo"):
            effects.read_only = True
        elif kind == "quota_exceeded" and op == "create":
            effects.quota_exceeded = True
        elif kind == "accept_overlong" and op == "create" and action in ("post", "dm"):
            effects.accept_overlong = True
        elif kind == "delete_lost" and op == "undo" and action in ("post", "dm"):
            effects.delete_lost = True
        else:
            continue
        effects.matched.append(fault.id)
    return effects
