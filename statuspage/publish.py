"""The static copy of the public site: every page, JSON document, feed and badge as files.

Each URL is rendered through the same views, middleware and cache as the live site, then written
where a static host finds it: `/` → `index.html`, `/incidents/<id>` → `incidents/<id>.html`
(nginx: `try_files $uri $uri.html $uri/index.html`, see docs/nginx.conf), documents under their own
names. Files are replaced atomically one by one, so a reader never sees half a file, and files of
the previous copy that no longer exist (a deleted incident) are removed. Each file over 1 KB of a
compressible type also gets its gzip (`.gz`) and brotli (`.br`) encodings beside it, rewritten and
removed with it, for the web server to send as they are (docs/nginx.conf: gzip_static).

A rewrite is incremental. A page that shows nothing but its own rows — a resolved incident, a
finished or cancelled maintenance, a month of history — is rendered again only when a digest of
those rows changed, or when the chrome did: what every page shows besides its rows (the page's
name, time zone and languages, the templates, translations and the code that renders them; see
chrome_fingerprint). The manifest in the folder records, per file, the digest it was rendered
from. Everything else (the status page, /history, JSON, feeds, badges, component pages, open
incidents, maintenances not over yet) moves with the clock or with every change, and is always
rendered. `full=True` (`publish --full`) renders everything.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http.request import validate_host
from django.template.loader import get_template
from django.test import Client
from django.utils import timezone

from detection.models import Component, ComponentDay, Incident, IncidentComponent, IncidentUpdate, Maintenance
from detection.rollups import SECONDS_FIELDS
from official.models import IncidentAcknowledgement, OfficialIncident, OfficialSource
from probes.models import Platform
from statuspage import encoding as encodings
from statuspage.cache import current_copies
from statuspage.reports import report_id
from statuspage.i18n import PREFIXED

log = logging.getLogger(__name__)

# The static copy holds each platform's reports of this many months (a month that is over is
# rendered again only when its inputs change: _report_inputs).
REPORT_MONTHS = 12
MANIFEST = ".vigie-published"
MANIFEST_FORMAT = 2
LOCK = ".vigie-publish.lock"
DOCUMENTS = [
    "/api/v2/summary.json", "/api/v2/status.json", "/api/v2/components.json", "/api/v2/incidents.json",
    "/api/v2/incidents/unresolved.json", "/api/v2/scheduled-maintenances.json",
    "/api/v2/scheduled-maintenances/upcoming.json", "/api/v2/scheduled-maintenances/active.json",
    "/history.rss", "/history.atom", "/history.json", "/badges/status.svg", "/badges/uptime.svg",
]
# The chrome: settings that show on every page, and the code and libraries that turn rows into
# the pages that are kept between rewrites. A change to any of them renders everything again.
CHROME_SETTINGS = ("VIGIE_PAGE_NAME", "TIME_ZONE", "LANGUAGE_CODE", "LANGUAGES", "USE_I18N", "USE_TZ",
                   "USE_THOUSAND_SEPARATOR", "FORMAT_MODULE_PATH", "ROOT_URLCONF")
CHROME_MODULES = ("statuspage.publish", "statuspage.views", "statuspage.context", "statuspage.i18n",
                  "vigie.urls", "statuspage.v2", "statuspage.templatetags.status", "statuspage.sanitize", "detection.incidents",
                  "probes.models", "official.selectors", "statuspage.templatetags.declared",
                  "statuspage.reports")
CHROME_LIBRARIES = ("Django", "markdown-it-py", "nh3")
# Each file over encoding.MIN_BYTES is written beside its encodings, under these suffixes.
ENCODED_SUFFIXES = {"gzip": ".gz", "br": ".br"}


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
    # Each platform's reliability reports (statuspage.reports) for the last REPORT_MONTHS months.
    report_months = _months(min(firsts) if firsts else None, now)[-REPORT_MONTHS:]
    reports = [f"/reports/{report_id(platform)}/{month}" for platform in Platform.objects.filter(enabled=True)
               .order_by("id") for month in report_months]
    pages += reports
    urls = pages + [f"/{code}{page}" for code in sorted(PREFIXED) for page in pages]
    urls += DOCUMENTS + [f"/components/{c}/{kind}.svg" for c in components for kind in ("status", "uptime")]
    urls += [f"{report}.csv" for report in reports]
    return urls


def file_for(url: str) -> str:
    """Where the static host looks for `url`."""
    path = url.lstrip("/")
    if path == "" or path.endswith("/"):
        return path + "index.html"
    if "." in path.rsplit("/", 1)[-1]:
        return path
    return path + ".html"


@functools.cache
def _code_fingerprint() -> str:
    """The code part of the chrome, read once per process: a worker renders with the code,
    templates (Django's cached loader) and translations it loaded, not with what a deployment
    puts on disk meanwhile, and must not record the new fingerprint next to pages of the old."""
    digest = hashlib.sha256()
    for name in CHROME_LIBRARIES:
        digest.update(f"{name} {importlib.metadata.version(name)}\n".encode())
    files = [Path(importlib.import_module(name).__file__) for name in CHROME_MODULES]
    files += sorted(p for p in Path(get_template("statuspage/base.html").origin.name).parent.rglob("*") if p.is_file())
    files += sorted(p for folder in settings.LOCALE_PATHS for p in Path(folder).rglob("*.mo"))
    for path in files:
        digest.update(f"{path.name}\n".encode() + path.read_bytes())
    return digest.hexdigest()


def chrome_fingerprint() -> str:
    """A digest of what shows on every page besides its own rows: CHROME_SETTINGS, and, as this
    process loaded them, the public templates (all of them: any edit renders everything again),
    the compiled translations, the source of CHROME_MODULES and the versions of CHROME_LIBRARIES.
    Component names are not in it: they are in the digests of the pages that name them."""
    digest = hashlib.sha256(f"format {MANIFEST_FORMAT}\ncode {_code_fingerprint()}\n".encode())
    for name in CHROME_SETTINGS:
        digest.update(f"{name}={getattr(settings, name, None)!r}\n".encode())
    return digest.hexdigest()


def _fold(digests: dict, owner: int, row) -> None:
    digests.setdefault(owner, hashlib.sha256()).update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")


def _fields(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def page_inputs(now: datetime) -> dict[str, str]:
    """Page (unprefixed URL) → digest of the rows it shows, for the pages that show nothing else
    and nothing that moves with the clock: a resolved incident (its row, its updates, the id, name
    and position of its components), a maintenance that is over or cancelled (its row and its
    components), a month of history (the digests of the incidents and maintenances that began in
    it, and whether an older incident exists, for its "older" link), a platform's report of a month
    that is over (_report_inputs). Every other page is absent."""
    incidents: dict = {}  # id → running sha256 of its rows
    for row in Incident.objects.order_by("id").values(*_fields(Incident)).iterator(chunk_size=2000):
        _fold(incidents, row["id"], row)
    updates = IncidentUpdate.objects.order_by("incident_id", "-created_at", "-id").values(*_fields(IncidentUpdate))
    for row in updates.iterator(chunk_size=2000):
        _fold(incidents, row["incident_id"], row)
    links = IncidentComponent.objects.order_by("incident_id", "component_id").values_list(
        "incident_id", "component__public_id", "component__name", "component__position")
    for incident_id, *component in links.iterator(chunk_size=2000):
        _fold(incidents, incident_id, component)
    # What the platform declared about it shows on its page too (official/): its acknowledgement,
    # the official incident it links to, and the source's platform name.
    acks = IncidentAcknowledgement.objects.order_by("incident_id").values_list(
        "incident_id", "source__platform__name", "source__enabled", "acknowledged_at", "official_resolved_at",
        "official_incident__name", "official_incident__url")
    for incident_id, *ack in acks.iterator(chunk_size=2000):
        _fold(incidents, incident_id, ack)
    # Which platforms have a source decides whether a page says "never acknowledged" at all.
    declared = list(OfficialSource.objects.filter(enabled=True).order_by("platform_id").values_list(
        "platform_id", "platform__name"))
    if declared:
        for incident_id in incidents:
            _fold(incidents, incident_id, ["declared", declared])
    maintenances: dict = {}
    for row in Maintenance.objects.order_by("id").values(*_fields(Maintenance)).iterator(chunk_size=2000):
        _fold(maintenances, row["id"], row)
    links = Maintenance.components.through.objects.order_by("maintenance_id", "component_id").values_list(
        "maintenance_id", "component__public_id", "component__name", "component__position")
    for maintenance_id, *component in links.iterator(chunk_size=2000):
        _fold(maintenances, maintenance_id, component)

    zone = ZoneInfo(settings.TIME_ZONE)
    inputs: dict[str, str] = {}
    months: dict[str, list[str]] = {}
    # Rows made while the digests above were read have none: their pages are rendered this time.
    rows = Incident.objects.order_by("started_at", "id").values_list("id", "public_id", "started_at", "resolved_at")
    earliest = None
    for incident_id, public_id, started_at, resolved_at in rows.iterator(chunk_size=2000):
        digest = incidents[incident_id].hexdigest() if incident_id in incidents else f"new {public_id}"
        month = started_at.astimezone(zone).strftime("%Y-%m")
        earliest = earliest or month
        months.setdefault(month, []).append(digest)
        if resolved_at is not None and incident_id in incidents:
            inputs[f"/incidents/{public_id}"] = digest
    rows = Maintenance.objects.order_by("scheduled_for", "id").values_list(
        "id", "public_id", "scheduled_for", "scheduled_until", "cancelled")
    for maintenance_id, public_id, scheduled_for, scheduled_until, cancelled in rows.iterator(chunk_size=2000):
        digest = maintenances[maintenance_id].hexdigest() if maintenance_id in maintenances else f"new {public_id}"
        months.setdefault(scheduled_for.astimezone(zone).strftime("%Y-%m"), []).append(f"maintenance {digest}")
        if (cancelled or scheduled_until <= now) and maintenance_id in maintenances:
            inputs[f"/incidents/{public_id}"] = digest
    # Official incidents Vigie did not see show in the month they were first seen.
    unseen = (OfficialIncident.objects.filter(acknowledgements__isnull=True, source__enabled=True)
              .order_by("first_seen_at", "id").values_list("first_seen_at", "id", "name", "url", "declared_started_at",
                                                           "source__platform__name"))
    for first_seen_at, *row in unseen.iterator(chunk_size=2000):
        months.setdefault(first_seen_at.astimezone(zone).strftime("%Y-%m"), []).append(
            "official " + json.dumps(row, default=str))
    if months:  # months with nothing in them too: they show the month's name and the "older" link
        year, month = (int(part) for part in min(months).split("-"))
        last = max(max(months), now.astimezone(zone).strftime("%Y-%m"))
        while f"{year:04d}-{month:02d}" <= last:
            months.setdefault(f"{year:04d}-{month:02d}", [])
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    for month, digests in months.items():
        older = earliest is not None and earliest < month
        inputs[f"/history/{month}"] = hashlib.sha256(f"{month} {older} {' '.join(digests)}".encode()).hexdigest()
    inputs.update(_report_inputs(now, {month: inputs[f"/history/{month}"] for month in months}, declared))
    return {page: digest[:32] for page, digest in inputs.items()}


def _report_inputs(now: datetime, month_digests: dict[str, str], declared: list) -> dict[str, str]:
    """The reports of months that are over (statuspage.reports): a month's report shows its
    incidents and official incidents (the month's digest), which platforms have a source, and the
    platform's components with their days of that month. The current month's moves with the clock."""
    current = timezone.localtime(now, ZoneInfo(settings.TIME_ZONE)).strftime("%Y-%m")
    platforms = list(Platform.objects.filter(enabled=True).order_by("id"))
    if not platforms:
        return {}
    links: dict[int, set[int]] = {}
    for platform_id, component_id in Component.probes.through.objects.values_list("probe__platform_id",
                                                                                   "component_id"):
        links.setdefault(platform_id, set()).add(component_id)
    components = {row["id"]: row for row in Component.objects.values(
        "id", "name", "name_translations", "position", "created_at", "status", "status_since")}
    days: dict[tuple[int, str], list] = {}
    rows = ComponentDay.objects.order_by("component_id", "day").values_list("component_id", "day", *SECONDS_FIELDS)
    for component_id, day, *seconds in rows.iterator(chunk_size=2000):
        days.setdefault((component_id, day.strftime("%Y-%m")), []).append([day, *seconds])
    inputs = {}
    for platform in platforms:
        ids = sorted(links.get(platform.id, ()))
        page = f"/reports/{report_id(platform)}"
        for month, month_digest in month_digests.items():
            if month >= current:
                continue
            digest = hashlib.sha256(f"report {month} {platform.name} {month_digest} {declared}".encode())
            for component_id in ids:
                digest.update(json.dumps([components[component_id], days.get((component_id, month), [])],
                                         sort_keys=True, default=str).encode())
            inputs[f"{page}/{month}"] = inputs[f"{page}/{month}.csv"] = digest.hexdigest()
    return inputs


def _unprefixed(url: str) -> str:
    first, _, rest = url.lstrip("/").partition("/")
    return f"/{rest}" if first in PREFIXED else url


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


def _write_encoded(path: Path, content: bytes, content_type: str) -> None:
    """Write the file's gzip and brotli encodings beside it (`index.html.gz`, `index.html.br`), for
    a server to send as they are (nginx: gzip_static, brotli_static) instead of compressing on
    every request; the same encodings the live site's cache keeps. A file too small or not worth
    compressing has none: any left from its previous content are removed."""
    made = encodings.variants(content, content_type)
    for coding, suffix in ENCODED_SUFFIXES.items():
        target = path.with_name(path.name + suffix)
        if coding in made:
            _write(target, made[coding])
        elif target.is_file():
            target.unlink()


def _write_order(url: str) -> int:
    """Pages that link to others are written last, so a link never points at a file not yet there."""
    bare = url.split("/", 2)[2] if url.count("/") > 1 and url.split("/")[1] in PREFIXED else url.lstrip("/")
    if bare in ("", "history"):
        return 2
    return 1 if bare.startswith("history/") else 0


def _manifest_read(path: Path) -> tuple[str | None, dict[str, str | None]]:
    """(chrome, file → digest) of the previous copy. A manifest of the first format (a list of
    files) gives no chrome, so everything is rendered again, but its files are still cleaned up."""
    if not path.exists():
        return None, {}
    text = path.read_text()
    try:
        manifest = json.loads(text)
    except ValueError:
        return None, {name: None for name in text.split()}
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None, {}
    return manifest["chrome"], manifest["pages"]


def _manifest_write(path: Path, chrome: str, pages: dict[str, str | None]) -> None:
    _write(path, json.dumps({"format": MANIFEST_FORMAT, "chrome": chrome, "pages": dict(sorted(pages.items()))},
                            indent=0).encode())


def site_publish(*, out: str | Path, full: bool = False, report: dict | None = None) -> list[str]:
    """Write the static copy into `out`, rendering only the pages whose inputs changed since the
    last copy (everything with `full`); returns the files written, relative to it. A page that
    fails to render is skipped and listed in `report["skipped"]` as (url, reason); the others are
    written all the same (a frozen copy is worse than one page out of date).

    Every page to render is rendered before anything is written, so a failure leaves the previous
    copy whole, and runs on the same folder take turns (a lock file), so an older run never
    finishes after a newer one. A page's digest is recorded only if its inputs were the same
    before and after rendering and the page was rendered by this run (not replayed from the public
    cache, which may hold a copy from before a change whose announcement is still on its way):
    otherwise it is rendered again next time."""
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = root / MANIFEST
        chrome = chrome_fingerprint()
        previous_chrome, previous = _manifest_read(manifest)
        full = full or chrome != previous_chrome
        before = page_inputs(timezone.now())
        urls = site_urls()
        files = {url: file_for(url) for url in urls}
        for url, name in files.items():
            if not (root / name).resolve().is_relative_to(root):
                raise PublishError(f"{url} would be written outside {root}")
        kept = {name: previous[name] for url, name in files.items()
                if not full and previous.get(name) is not None
                and previous[name] == before.get(_unprefixed(url)) and (root / name).is_file()}
        client = Client(HTTP_HOST=_host(), HTTP_ACCEPT_LANGUAGE=settings.LANGUAGE_CODE)
        rendered, types, own = {}, {}, set()
        skipped = report.setdefault("skipped", []) if report is not None else []
        for url in urls:
            if files[url] in kept:
                continue
            # One bad page never stops the copy: it is skipped (its previous file, if any, stays),
            # reported, and rendered again next time; every other page is written.
            try:
                with current_copies():  # never the copy from before a change the live site is re-rendering
                    response = client.get(url)
            except Exception as error:  # noqa: BLE001 — whatever one page raises
                log.exception("publish: %s could not be rendered; skipped", url)
                skipped.append((url, f"{type(error).__name__}: {error}"[:200]))
                continue
            if response.status_code != 200:
                log.warning("publish: %s answered %s; skipped", url, response.status_code)
                skipped.append((url, f"answered {response.status_code}"))
                continue
            rendered[url] = response.content
            types[url] = response.get("Content-Type", "")
            if response.get("X-Cache", "miss") == "miss":
                own.add(url)
        # Read again only when this run rendered a page it may keep (not after a status change alone).
        after = page_inputs(timezone.now()) if any(_unprefixed(url) in before for url in rendered) else {}
        pages: dict[str, str | None] = dict(kept)
        for url, _reason in skipped:  # the previous file stays, claimed up to date by nobody
            if (root / files[url]).is_file():
                pages[files[url]] = None
        for url in rendered:
            digest = before.get(_unprefixed(url))
            pages[files[url]] = digest if url in own and digest == after.get(_unprefixed(url)) else None
        # Until every file is in place, no file about to be replaced is claimed up to date, and
        # the previous copy's files stay listed, so a run that dies here is made good by the next.
        _manifest_write(manifest, chrome, {**{name: None for name in previous}, **kept,
                                           **{files[url]: None for url in rendered}})
        written = []
        for url in sorted(rendered, key=_write_order):
            _write_encoded(root / files[url], rendered[url], types[url])
            _write(root / files[url], rendered[url])
            written.append(files[url])
        for gone in set(previous) - set(pages):
            target = (root / gone).resolve()
            if target.is_relative_to(root) and target.is_file():
                target.unlink()
            for suffix in ENCODED_SUFFIXES.values():
                encoded = target.with_name(target.name + suffix)
                if target.is_relative_to(root) and encoded.is_file():
                    encoded.unlink()
        _manifest_write(manifest, chrome, pages)
    log.info("published %s: %d files written, %d unchanged kept", root, len(written), len(kept))
    return written
