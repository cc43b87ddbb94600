"""Sandbox settings: tokens, rate-limit presets and limits, read from the environment by default."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

DEFAULT_PROBER_TOKEN = "sandbox-prober-token"
DEFAULT_PARTNER_TOKEN = "sandbox-partner-token"
# No fixed control token: each `sandbox serve` makes one unless SANDBOX_CONTROL_TOKEN is set, and
# writes it to SANDBOX_CONTROL_TOKEN_FILE (var/sandbox-control-token) for the control clients.
DEFAULT_PORT = 8001

# family -> (limit, period in seconds). Numbers from Mastodon's docs and app/lib/rate_limiter.rb:
# api 300/5 min per account, statuses (posts and reblogs) 300/3 h, delete+unreblog 30/30 min,
# follows 400/24 h. Windows are aligned to epoch buckets, as Mastodon's are.
MASTODON_RATE_LIMITS: dict[str, tuple[int, int]] = {
    "api": (300, 5 * 60),
    "statuses": (300, 3 * 3600),
    "deletes": (30, 30 * 60),
    "follows": (400, 24 * 3600),
}
# Same windows, limits so high that scheduled probes never hit them (the default: a demo that
# rate-limits itself would hide the faults it is meant to show).
GENEROUS_RATE_LIMITS: dict[str, tuple[int, int]] = {
    family: (1_000_000, period) for family, (_, period) in MASTODON_RATE_LIMITS.items()
}
RATE_LIMIT_PRESETS = {"generous": GENEROUS_RATE_LIMITS, "mastodon": MASTODON_RATE_LIMITS}
# How the sandbox answers where Mastodon-compatible servers differ. "takahe": an over-long post is
# refused with 400 (not 422), no rate-limit headers are sent, a reblog is answered with the
# original status marked `reblogged: true` (not a wrapper status), and a missing status is a 404
# HTML page (not JSON); a follow is answered `following: false` and made effective by a background
# worker about a second later; writes refused in read-only mode answer 500 with an HTML page (not
# 503 JSON); a bad token is refused with 400 text/html "Invalid Bearer token" (not 401); two
# follows of the same pair at the same moment break a unique constraint (500 HTML); posts reach
# followers through a fan-out worker (0.5 s). "mastodon-locked": Mastodon with locked (or remote)
# accounts: a follow is answered `requested: true` and accepted a second later (then `following`).
COMPAT_MODES = ("mastodon", "takahe", "mastodon-locked")
# How long a follow takes to become effective in each mode (Takahē's background worker).
FOLLOW_DELAY_S = {"mastodon": 0.0, "takahe": 1.0, "mastodon-locked": 1.0}
# How long a post takes to reach followers' home timelines (fan-out by a background worker, on every
# Mastodon-compatible server; the fault fanout_stalled stops that worker).
FANOUT_DELAY_S = {"mastodon": 0.0, "takahe": 0.5, "mastodon-locked": 0.0}
# How long a follow's insert takes in "takahe" mode: a second follow of the same pair arriving
# meanwhile breaks the unique constraint and is answered 500 (two probes of one account at once).
FOLLOW_INSERT_S = 0.1


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def control_token_file() -> Path:
    """Where `sandbox serve` writes its control token: the setting SANDBOX_CONTROL_TOKEN_FILE
    (environment variable of the same name), by default var/sandbox-control-token."""
    try:
        from django.conf import settings

        configured = getattr(settings, "SANDBOX_CONTROL_TOKEN_FILE", None)
    except Exception:  # noqa: BLE001 — usable without Django settings too
        configured = None
    return Path(os.environ.get("SANDBOX_CONTROL_TOKEN_FILE") or configured or Path("var") / "sandbox-control-token")


def control_token_read() -> str | None:
    """The control token a client should send: SANDBOX_CONTROL_TOKEN, else the running sandbox's file."""
    if os.environ.get("SANDBOX_CONTROL_TOKEN"):
        return os.environ["SANDBOX_CONTROL_TOKEN"]
    try:
        return control_token_file().read_text().strip() or None
    except OSError:
        return None


def control_token_write(token: str) -> Path:
    """Write the token for the control clients, readable by this user only."""
    path = control_token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def default_port() -> int:
    """SANDBOX_PORT or 8001; a malformed value falls back to the default rather than crashing."""
    try:
        return int(os.environ.get("SANDBOX_PORT") or DEFAULT_PORT)
    except ValueError:
        return DEFAULT_PORT


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox instance needs; tests pass their own tokens and limits."""

    prober_token: str = field(default_factory=lambda: _env("SANDBOX_PROBER_TOKEN", DEFAULT_PROBER_TOKEN))
    partner_token: str = field(default_factory=lambda: _env("SANDBOX_PARTNER_TOKEN", DEFAULT_PARTNER_TOKEN))
    # Random per start unless configured: a fixed default would let anyone who read the docs drive it.
    control_token: str = field(default_factory=lambda: _env("SANDBOX_CONTROL_TOKEN", secrets.token_urlsafe(24)))
    # Host names (besides loopback, the bound address and public_url's) the sandbox answers to; any
    # other Host header is answered 421, so a web page cannot reach it by DNS rebinding.
    allowed_hosts: tuple[str, ...] = field(default_factory=lambda: tuple(
        h.strip().lower() for h in os.environ.get("SANDBOX_ALLOWED_HOSTS", "").split(",") if h.strip()))
    rate_limits: str = "generous"
    # family -> limit, or family -> (limit, period_s); applied on top of the preset.
    rate_limit_overrides: Mapping[str, int | tuple[int, int]] = field(default_factory=dict)
    max_characters: int = 500
    title: str = "Vigie sandbox"
    # Base URL used in entity links (url, uri) and the instance domain; defaults to the bound address.
    public_url: str | None = None
    verbose: bool = False
    compat: str = "mastodon"
    # Seconds before a follow is effective (answered pending until then); None: the compat mode's.
    follow_delay_s: float | None = None
    # Seconds before a post reaches followers' home timelines; None: the compat mode's.
    fanout_delay_s: float | None = None

    def __post_init__(self) -> None:
        if self.rate_limits not in RATE_LIMIT_PRESETS:
            raise ValueError(f"rate_limits must be one of {sorted(RATE_LIMIT_PRESETS)}, not {self.rate_limits!r}")
        for family in self.rate_limit_overrides:
            if family not in MASTODON_RATE_LIMITS:
                raise ValueError(f"unknown rate-limit family {family!r}; known: {sorted(MASTODON_RATE_LIMITS)}")
        if self.compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {', '.join(COMPAT_MODES)}, not {self.compat!r}")
        if self.max_characters < 1:
            raise ValueError("max_characters must be positive")
        tokens = [self.prober_token, self.partner_token, self.control_token]
        if len(set(tokens)) != len(tokens) or not all(tokens):
            # A shared token would make the control endpoint or the other account reachable by mistake.
            raise ValueError("prober, partner and control tokens must be non-empty and distinct")

    @property
    def follow_delay(self) -> float:
        return FOLLOW_DELAY_S[self.compat] if self.follow_delay_s is None else max(0.0, float(self.follow_delay_s))

    @property
    def fanout_delay(self) -> float:
        return FANOUT_DELAY_S[self.compat] if self.fanout_delay_s is None else max(0.0, float(self.fanout_delay_s))

    def limits(self) -> dict[str, tuple[int, int]]:
        """The effective family -> (limit, period_s) table."""
        table = dict(RATE_LIMIT_PRESETS[self.rate_limits])
        for family, value in self.rate_limit_overrides.items():
            if isinstance(value, tuple):
                table[family] = (int(value[0]), int(value[1]))
            else:
                table[family] = (int(value), table[family][1])
        return table
