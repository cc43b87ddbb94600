"""With the database down, public pages still answer: from the last good copy of each page.

A public GET that fails while the database does not answer is served, in order of freshness, from
this process's copy (statuspage.cache's memory), the shared cache's last copy, or the static copy
(VIGIE_PUBLISH_DIR, statuspage.publish): status 200, marked `X-Vigie-Fallback: last-good-copy`
and, on HTML pages, a notice that live data is unavailable (the copy carries its own "last
checked" time). With no copy anywhere: 503 with a short page saying so. The on-call side, which
needs the database for everything, answers 503 naming the database as what is down.
"""
from __future__ import annotations

import logging
import mimetypes
import re
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from django.utils.translation import gettext as _, override

from statuspage import publish
from statuspage.cache import Kept, memory

log = logging.getLogger(__name__)

PRIVATE_PREFIXES = ("/oncall", "/admin", "/api/v1", "/metrics")
_BODY = re.compile(rb"<body[^>]*>", re.IGNORECASE)


def _database_down() -> bool:
    from probes.spool import database_reachable

    return not database_reachable()


def _language(path: str) -> str:
    first = path.lstrip("/").split("/", 1)[0]
    codes = [code for code, _name in settings.LANGUAGES]
    return first if first in codes else settings.LANGUAGE_CODE


def _from_caches(path: str, language: str) -> Kept | None:
    where = f"{language}:{path}"
    local = memory.get(where)
    if local is not None:
        return local[1]
    try:
        from django.core.cache import cache

        return cache.get(f"vigie:resp:last:{where}")
    except Exception:  # the cache may be down too
        return None


def _from_static_copy(path: str) -> Kept | None:
    folder = settings.VIGIE_PUBLISH_DIR
    if not folder:
        return None
    root = Path(folder).resolve()
    target = (root / publish.file_for(path)).resolve()
    if root not in target.parents or not target.is_file():
        return None
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith(("json", "xml")):
        content_type += "; charset=utf-8"
    return Kept(200, target.read_bytes(), {"Content-Type": content_type}, target.stat().st_mtime)


def _notice(content: bytes, language: str) -> bytes:
    with override(language):
        words = _("Live data is unavailable right now: this is the last good copy of this page.")
    banner = f'<p class="fallback-notice" role="status">{escape(words)}</p>'.encode()
    found = _BODY.search(content)
    return content[:found.end()] + banner + content[found.end():] if found else content


def last_good_copy(request: HttpRequest) -> HttpResponse:
    path, language = request.path, _language(request.path)
    kept = _from_caches(path, language) or _from_static_copy(path)
    if kept is None:
        with override(language):
            words = _("The status page cannot read its data right now. Please try again in a minute.")
        response = HttpResponse(f"<!doctype html><title>{escape(settings.VIGIE_PAGE_NAME)}</title><p>{escape(words)}</p>",
                                status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = "60"
        return response
    content_type = kept.headers.get("Content-Type", "")
    content = _notice(kept.content, language) if content_type.startswith("text/html") else kept.content
    response = HttpResponse(content, status=200)
    for name, value in kept.headers.items():
        response[name] = value
    response["X-Vigie-Fallback"] = "last-good-copy"
    response["Cache-Control"] = "no-store"
    return response


class LastGoodCopyMiddleware:
    """Public GETs that fail with the database down are answered from the last good copy."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 500 or request.method not in ("GET", "HEAD") or not _database_down():
            return response
        log.error("database unreachable: %s answered from its last good copy", request.path)
        if request.path.startswith(PRIVATE_PREFIXES):
            down = HttpResponse("The database is down: Vigie cannot read or record anything until it is back. "
                                "Runs wait in the workers' spools; the public pages answer from their last good "
                                "copy.\n", status=503, content_type="text/plain; charset=utf-8")
            down["Retry-After"] = "30"
            return down
        return last_good_copy(request)
