"""The static copy of the public site: every page, JSON document, feed and badge as files.

Each URL is rendered through the same views, middleware and cache as the live site, then written
where a static host finds it: `/` → `index.html`, `/incidents/<id>` → `incidents/<id>.html`
(nginx: `try_files $uri $uri.html $uri/index.html`, see docs/nginx.conf), documents under their own
names. Files are replaced atomically one by one, so a reader never sees half a file, and files of
the previous copy that no longer exist (a deleted incident) are removed.
"""
from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host
from django.test import Client
from django.utils import timezone

from probes.models import Component, Incident, Maintenance
from statuspage.i18n import PREFIXED

log = logging.getLogger(__name__)

MANIFEST = ".vigie-published"
LOCK = ".vigie-publish.lock"
DOCUMENTS = [
    "/api/v2/summary.json", "/api/v2/status.json", "/api/v2/components.json", "/api/v2/incidents.json",
    "/api/v2/incidents/unresolved.json", "/api/v2/scheduled-maintenances.json",
    "/api/v2/scheduled-maintenances/upcoming.json", "/api/v2/scheduled-maintenances/active.json",
    "/history.rss", "/history.atom", "/badges/status.svg", "/badges/uptime.svg",
]


class PublishError(Exception):
    pass


def _months(first: datetime | None, now: datetime) -> list[str]:
    if first is None:
        return []
    zone_now, zone_first = timezone.localtime(now), timezone.localtime(first)
    year, month, months = zone_first.year, zone_first.month, []
    while (year, month) <= (zone_now.year, zone_now.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def site_urls() -> list[str]:
    """Every public URL of the site as it is now."""
    now = timezone.now()
    firsts = [t for t in (Incident.objects.order_by("started_at").values_list("started_at", flat=True).first(),
                          Maintenance.objects.order_by("scheduled_for").values_list("scheduled_for", flat=True)
                          .first()) if t]
    pages = ["/", "/history"] + [f"/history/{m}" for m in _months(min(firsts) if firsts else None, now)]
    pages += [f"/incidents/{i}" for i in Incident.objects.values_list("public_id", flat=True)]
    pages += [f"/incidents/{m}" for m in Maintenance.objects.values_list("public_id", flat=True)]
    components = list(Component.objects.values_list("public_id", flat=True))
    pages += [f"/components/{c}" for c in components]
    urls = pages + [f"/{code}{page}" for code in sorted(PREFIXED) for page in pages]
    urls += DOCUMENTS + [f"/components/{c}/{kind}.svg" for c in components for kind in ("status", "uptime")]
    return urls


def file_for(url: str) -> str:
    """Where the static host looks for `url`."""
    path = url.lstrip("/")
    if path == "" or path.endswith("/"):
        return path + "index.html"
    if "." in path.rsplit("/", 1)[-1]:
        return path
    return path + ".html"


def _host() -> str:
    host = urlsplit(settings.VIGIE_PUBLIC_URL).hostname or "localhost"
    if validate_host(host, settings.ALLOWED_HOSTS):
        return host
    allowed = [h for h in settings.ALLOWED_HOSTS if h != "*" and not h.startswith(".")]
    return allowed[0] if allowed else host


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".publish-")
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def _write_order(url: str) -> int:
    """Pages that link to others are written last, so a link never points at a file not yet there."""
    bare = url.split("/", 2)[2] if url.count("/") > 1 and url.split("/")[1] in PREFIXED else url.lstrip("/")
    if bare in ("", "history"):
        return 2
    return 1 if bare.startswith("history/") else 0


def site_publish(*, out: str | Path) -> list[str]:
    """Write the static copy into `out`; returns the files written, relative to it. Every URL is
    rendered before anything is written, so a failure leaves the previous copy whole, and runs
    on the same folder take turns (a lock file), so an older run never finishes after a newer one."""
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = Client(HTTP_HOST=_host(), HTTP_ACCEPT_LANGUAGE=settings.LANGUAGE_CODE)
        rendered = {}
        for url in site_urls():
            response = client.get(url)
            if response.status_code != 200:
                raise PublishError(f"{url} answered {response.status_code}; the previous copy was left as it was")
            rendered[url] = response.content
        written = []
        for url in sorted(rendered, key=_write_order):
            name = file_for(url)
            target = (root / name).resolve()
            if not target.is_relative_to(root):
                raise PublishError(f"{url} would be written outside {root}")
            _write(target, rendered[url])
            written.append(name)
        manifest = root / MANIFEST
        previous = set(manifest.read_text().split()) if manifest.exists() else set()
        for gone in previous - set(written):
            target = (root / gone).resolve()
            if target.is_relative_to(root) and target.is_file():
                target.unlink()
        _write(manifest, "\n".join(sorted(written)).encode())
    log.info("published %d files to %s", len(written), root)
    return written
