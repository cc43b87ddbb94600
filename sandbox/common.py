"""Shared pieces of the sandbox: the API error type and Mastodon's timestamp formats."""
from __future__ import annotations

from datetime import datetime, timezone

# Mastodon's own English error texts (app/controllers/concerns/api/error_handling.rb, config/locales/en.yml).
NOT_FOUND = "Record not found"
INVALID_TOKEN = "The access token is invalid"
NOT_ALLOWED = "This action is not allowed"
TOO_MANY = "Too many requests"
SERVER_ERROR = "We're sorry, but something went wrong on our end."
# What a Takahē-like server answers when it crashes (read-only writes, a unique constraint broken by
# two concurrent inserts): its HTML error page, status 500. Seen from Takahē 0.11.
TAKAHE_SERVER_ERROR = ("<!DOCTYPE html><html lang=\"en\"><head><title>Server Error - Takahē</title></head>"
                       "<body><main><h1>Server Error</h1><p>Something went wrong.</p></main></body></html>")
HTML_TYPE = "text/html; charset=utf-8"


class ApiError(Exception):
    """An HTTP error answered as Mastodon does: a status code and a JSON body {"error": text}."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None,
                 extra: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict:
        return {"error": self.message, **self.extra}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso_ms(moment: datetime) -> str:
    """Entity timestamps, e.g. 2026-08-01T13:53:55.869Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_us(moment: datetime) -> str:
    """Rate-limit reset timestamps, e.g. 2026-08-01T15:00:00.898144Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
