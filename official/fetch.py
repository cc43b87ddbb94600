"""Reading an official source over HTTP, through the probes' own guarded seam (platforms.http):
a total deadline per read, a size cap per answer, at most MAX_REDIRECTS redirects (each one
through the SSRF guard again), nothing but http(s). Any failure is Unreadable, with the reason in
Vigie's words."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from official.models import OfficialSource, SourceKind
from official.parse import Declared, Unreadable, parse_feed, parse_statuspage
from platforms.errors import ProbeError
from platforms.http import HttpResult, HttpSeam, url_path

READ_DEADLINE_S = 15.0  # every request of one read together
MAX_BYTES = 1_000_000  # a status document is a few kilobytes; GitHub's feed is ~100 KB
MAX_REDIRECTS = 3
STATUSPAGE_PATHS = ("api/v2/status.json", "api/v2/incidents/unresolved.json", "api/v2/components.json")
FEED_TYPES = ("xml", "rss", "atom", "text/plain")


def _seam() -> HttpSeam:
    return HttpSeam(user_agent=f"Vigie/0.1 (official status reader; +{settings.VIGIE_PUBLIC_URL})",
                    deadline=time.monotonic() + READ_DEADLINE_S,
                    max_bytes=min(MAX_BYTES, settings.VIGIE_MAX_RESPONSE_BYTES))


def _get(http: HttpSeam, url: str, accept: str) -> HttpResult:
    for _ in range(MAX_REDIRECTS + 1):
        try:
            result = http.request("GET", url, headers={"Accept": accept})
        except ProbeError as exc:
            raise Unreadable(f"{exc.message}") from None
        if result.status in (301, 302, 303, 307, 308):
            target = result.headers.get("location", "")
            url = urljoin(url, target)
            if urlsplit(url).scheme not in ("http", "https"):
                raise Unreadable(f"GET {result.path} redirected to a non-http(s) address")
            continue
        if result.status != 200:
            raise Unreadable(f"GET {result.path} answered HTTP {result.status}")
        if result.truncated:
            raise Unreadable(f"GET {result.path} answered more than {http.max_bytes} bytes")
        return result
    raise Unreadable(f"GET {url_path(url)} redirected more than {MAX_REDIRECTS} times")


def _json(http: HttpSeam, url: str) -> Any:
    result = _get(http, url, "application/json")
    kind = result.headers.get("content-type", "")
    if "html" in kind:
        raise Unreadable(f"GET {result.path} answered an HTML page, not JSON")
    try:
        return result.json()
    except ProbeError as exc:
        raise Unreadable(exc.message) from None


def source_fetch(source: OfficialSource, *, now: datetime) -> Declared:
    """Read `source` once; Unreadable when it cannot be read or understood."""
    http = _seam()
    if source.kind == SourceKind.STATUSPAGE:
        root = source.url.rstrip("/") + "/"
        status, unresolved, components = (_json(http, urljoin(root, path)) for path in STATUSPAGE_PATHS)
        return parse_statuspage(status, unresolved, components)
    if source.kind == SourceKind.FEED:
        result = _get(http, source.url, "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.1")
        return parse_feed(result.body, now=now)
    raise Unreadable(f"unknown source kind {source.kind!r}")
