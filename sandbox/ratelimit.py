"""Per-account fixed-window rate limits with Mastodon's families and X-RateLimit-* headers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .common import iso_us


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request: allowed or not, and the headers to send."""

    allowed: bool
    family: str
    limit: int
    remaining: int
    reset: datetime

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": iso_us(self.reset),
        }


class RateLimiter:
    """Counts requests per (account, family, epoch bucket). Not thread-safe: the state's lock guards it."""

    def __init__(self, limits: dict[str, tuple[int, int]]) -> None:
        self.limits = limits
        self._counts: dict[tuple[str, str, int], int] = {}

    def reset(self) -> None:
        self._counts.clear()

    def _reset_at(self, period: int, bucket: int, now: float) -> datetime:
        # Mastodon (rack-attack) adds the window's remaining whole seconds to the float "now", so the
        # reset lands on the bucket boundary plus the current sub-second fraction (…T15:00:00.898144Z).
        fraction = now - int(now)
        return datetime.fromtimestamp((bucket + 1) * period + fraction, tz=timezone.utc)

    def hit(self, account_id: str, families: list[str], now: float) -> Verdict:
        """Count one request against every family in `families` (ordered general -> specific).

        Refuses without counting when any family is exhausted, as rack-attack does; otherwise reports the
        family closest to exceeding (fewest remaining; on a tie the most specific one, which is what
        Mastodon's cassettes show: a POST /statuses carries the statuses family's 300/3 h headers).
        """
        self._purge(now)
        state = []
        for family in families:
            limit, period = self.limits[family]
            bucket = int(now // period)
            count = self._counts.get((account_id, family, bucket), 0)
            state.append((family, limit, period, bucket, count))
        for family, limit, period, bucket, count in state:
            if count >= limit:
                return Verdict(False, family, limit, 0, self._reset_at(period, bucket, now))
        best: Verdict | None = None
        for family, limit, period, bucket, count in state:
            self._counts[(account_id, family, bucket)] = count + 1
            verdict = Verdict(True, family, limit, limit - count - 1, self._reset_at(period, bucket, now))
            if best is None or verdict.remaining <= best.remaining:
                best = verdict
        assert best is not None  # families always holds at least "api"
        return best

    def _purge(self, now: float) -> None:
        # Old buckets are dead weight; drop them once the table grows, not on every request.
        if len(self._counts) < 4096:
            return
        for key in [k for k in self._counts if k[2] < int(now // self.limits[k[1]][1])]:
            del self._counts[key]
