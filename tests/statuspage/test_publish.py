"""The static copy from `publish` serves what the live site serves, links and all, and a rewrite
renders only the pages whose inputs changed."""
from __future__ import annotations

import io
import json
import re
import threading
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.urls import resolve
import requests
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from detection.evaluation import component_set_status
from detection.incidents import incident_add_update
from detection.models import Component, ComponentStatus, Incident, Maintenance
from statuspage import publish
from probes.models import Platform
from statuspage.publish import MANIFEST, site_publish, site_urls
from statuspage.reports import report_id
from vigie.celery import app as celery_app
from tests.snapshots import Snapshot
from tests.statuspage.test_pages import FEB_2023, SITE_AT, site, site_build  # noqa: F401  (the fixture)
from detection.simulation import simulate_scenario


class TryFiles(SimpleHTTPRequestHandler):
    """A static host as docs/nginx.conf sets nginx up: try $uri, $uri.html, $uri/index.html."""

    def translate_path(self, path):
        base = Path(super().translate_path(path))
        for candidate in (base, Path(f"{base}.html"), base / "index.html"):
            if candidate.is_file():
                return str(candidate)
        return str(base)

    def log_message(self, *args):
        pass


@pytest.fixture
def static_host(tmp_path):
    root = tmp_path / "site"
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(TryFiles, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _history():
    site = site_build()
    simulate_scenario(FEB_2023, start=site + timedelta(minutes=1), interval_s=30)
    maintenance = Maintenance.objects.create(title="Network work", scheduled_for=site + timedelta(days=1),
                                             scheduled_until=site + timedelta(days=1, hours=1))
    maintenance.components.set(Component.objects.filter(name="Timeline"))
    Incident.objects.create(title="Spring outage", started_at=site - timedelta(days=150),
                            detected_at=site - timedelta(days=150), resolved_at=site - timedelta(days=150),
                            status="resolved")
    return site


# The `site` fixture's rows and the outage after it: built once per test process, then copied.
HISTORY = Snapshot(_history)


@pytest.fixture
def history(db):
    """The demo's site (test_pages.site) with the feb-2023 outage a minute after it, on the site's clock."""
    with time_machine.travel(SITE_AT, tick=True):
        yield HISTORY.restore()


def test_the_static_copy_serves_the_same_bytes_as_the_live_site(client, history, static_host):
    root, base = static_host
    with time_machine.travel(timezone.now(), tick=False):
        written = site_publish(out=root)
        urls = site_urls()
        assert len(written) == len(urls) > 40
        for url in urls:
            live = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
            static = requests.get(base + url, timeout=5)
            assert (live.status_code, static.status_code) == (200, 200), url
            assert static.content == live.content, url


def test_every_link_of_the_static_copy_leads_somewhere(history, static_host):
    root, base = static_host
    site_publish(out=root)
    pages = [p for p in root.rglob("*.html")]
    targets = set()
    for page in pages:
        targets |= set(re.findall(r'href="(/[^"#?]*)', page.read_text()))
    assert {"/", "/fr/", "/history", "/api/v2/summary.json", "/history.atom"} <= targets
    # Forms and sessions are never files: docs/nginx.conf sends these to Django, so they must resolve there.
    dynamic = re.compile(r"^/(oncall|admin|api/v1|api/schema|api/docs|subscribe|metrics|static)(/|$)")
    for target in filter(dynamic.match, targets):
        resolve(target)
    broken = [t for t in sorted(targets) if not dynamic.match(t)
              and requests.get(base + t, timeout=5).status_code != 200]
    assert not broken


def test_republishing_removes_what_no_longer_exists(history, static_host):
    root, _ = static_host
    gone = Incident.objects.get(title="Spring outage")
    site_publish(out=root)
    assert (root / f"incidents/{gone.public_id}.html").is_file()
    gone.delete()
    site_publish(out=root)
    assert not (root / f"incidents/{gone.public_id}.html").exists()
    assert (root / "index.html").is_file()


def test_the_command_says_what_it_wrote_and_names_a_bad_folder(history, tmp_path, capsys):
    call_command("publish", out=str(tmp_path / "out"))
    assert re.search(r"published \d+ files to", capsys.readouterr().out)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CommandError, match="publish: .*a-file"):
        call_command("publish", out=str(blocker))


def test_a_public_change_rewrites_the_static_copy(site, tmp_path, settings,  # noqa: F811
                                                  django_capture_on_commit_callbacks):
    settings.VIGIE_PUBLISH_DIR = str(tmp_path / "auto")
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            component_set_status(component=Component.objects.get(name="Posting"), status=ComponentStatus.MAJOR,
                                 reason="test")
    finally:
        celery_app.conf.task_always_eager = False
    assert "Major Service Outage" in (tmp_path / "auto/index.html").read_text()
    assert '"indicator": "critical"' in (tmp_path / "auto/api/v2/status.json").read_text()


def test_a_url_that_fails_is_skipped_and_reported_and_the_rest_is_written(history, static_host, monkeypatch):
    # Issue 17: publish was all-or-nothing, so one bad page froze the whole copy.
    root, _ = static_host
    site_publish(out=root)
    new = Incident.objects.create(title="Brand new", started_at=timezone.now(), detected_at=timezone.now())
    from statuspage import publish

    urls = publish.site_urls()
    monkeypatch.setattr(publish, "site_urls", lambda: urls + ["/incidents/nosuchid0000"])  # answers 404
    report: dict = {}
    written = site_publish(out=root, report=report)
    assert report["skipped"] == [("/incidents/nosuchid0000", "answered 404")]
    assert f"incidents/{new.public_id}.html" in written and "Brand new" in (root / "index.html").read_text()


def test_a_page_that_raises_is_skipped_the_command_says_so_and_writes_the_rest(history, tmp_path, monkeypatch):
    incident = Incident.objects.order_by("started_at").first()
    real_get = publish.Client.get

    def get(self, path, *args, **kwargs):
        if path == f"/incidents/{incident.public_id}":
            raise RecursionError("maximum recursion depth exceeded")
        return real_get(self, path, *args, **kwargs)

    monkeypatch.setattr(publish.Client, "get", get)
    out, err = io.StringIO(), io.StringIO()
    call_command("publish", "--out", str(tmp_path), stdout=out, stderr=err)
    assert f"skipped /incidents/{incident.public_id} (RecursionError" in err.getvalue()
    assert "1 pages skipped" in out.getvalue()
    assert (tmp_path / "index.html").is_file() and (tmp_path / "history.atom").is_file()
    assert not (tmp_path / f"incidents/{incident.public_id}.html").exists()


@pytest.fixture
def requested(monkeypatch):
    """The URLs publish asks the site for, that is, renders."""
    asked: list[str] = []

    class Counting(publish.Client):
        def get(self, path, *args, **kwargs):
            asked.append(path)
            return super().get(path, *args, **kwargs)

    monkeypatch.setattr(publish, "Client", Counting)
    return asked


def pages_of(thing) -> set[str]:
    return {f"incidents/{thing.public_id}.html", f"fr/incidents/{thing.public_id}.html"}


def test_an_unchanged_resolved_incident_is_not_rendered_again(history, static_host, requested):
    root, _ = static_host
    old = Incident.objects.get(title="Spring outage")
    upcoming = Maintenance.objects.get()
    first = site_publish(out=root)
    before = (root / f"incidents/{old.public_id}.html").read_bytes()
    requested.clear()
    again = site_publish(out=root)
    assert f"/incidents/{old.public_id}" not in requested and f"/fr/incidents/{old.public_id}" not in requested
    assert not pages_of(old) & set(again) and (root / f"incidents/{old.public_id}.html").read_bytes() == before
    assert len(requested) == len(again) < len(first) == len(site_urls())
    # What moves with the clock or with every change is rendered every time, and only that.
    unresolved = {name for incident in Incident.objects.filter(resolved_at__isnull=True) for name in pages_of(incident)}
    # The reports of the month under way (statuspage.reports), each platform's.
    month = timezone.localtime(timezone.now()).strftime("%Y-%m")
    reports = {f"{prefix}reports/{report_id(p)}/{month}{ext}" for p in Platform.objects.filter(enabled=True)
               for prefix, ext in (("", ".html"), ("fr/", ".html"), ("", ".csv"))}
    always = {"index.html", "fr/index.html", "history.html", "fr/history.html", *pages_of(upcoming), *unresolved,
              *(publish.file_for(url) for url in publish.DOCUMENTS), *reports}
    assert {name for name in again if not name.startswith(("components/", "fr/components/"))} == always
    assert {f"components/{c}.html" for c in Component.objects.values_list("public_id", flat=True)} <= set(again)


def test_an_update_to_a_resolved_incident_renders_its_pages_and_its_month_again(history, static_host, requested):
    root, _ = static_host
    old = Incident.objects.get(title="Spring outage")
    others = Incident.objects.exclude(id=old.id).filter(resolved_at__isnull=False)
    assert others.exists()
    site_publish(out=root)
    incident_add_update(incident=old, status="postmortem", body="What **we** learnt.", automatic=False)
    written = set(site_publish(out=root))
    month = timezone.localtime(old.started_at).strftime("%Y-%m")
    assert pages_of(old) | {f"history/{month}.html", f"fr/history/{month}.html"} <= written
    assert not any(pages_of(other) & written for other in others)
    assert "we</strong> learnt" in (root / f"fr/incidents/{old.public_id}.html").read_text()


def test_a_renamed_component_renders_again_the_pages_that_name_it(history, static_host):
    root, _ = static_host
    old = Incident.objects.get(title="Spring outage")
    named = Incident.objects.exclude(id=old.id).filter(resolved_at__isnull=False).first()
    component = named.components.first()
    site_publish(out=root)
    Component.objects.filter(id=component.id).update(name="Posting, renamed")
    written = set(site_publish(out=root))
    assert pages_of(named) <= written and not pages_of(old) & written
    assert "Posting, renamed" in (root / f"incidents/{named.public_id}.html").read_text()


def test_a_change_of_the_chrome_or_full_renders_everything(history, static_host, settings, capsys):
    root, _ = static_host
    every = len(site_publish(out=root))
    assert len(site_publish(out=root)) < every
    settings.VIGIE_PAGE_NAME = "Status of Example"
    assert len(site_publish(out=root)) == every
    old = Incident.objects.get(title="Spring outage")
    assert "Status of Example" in (root / f"fr/incidents/{old.public_id}.html").read_text()
    assert len(site_publish(out=root)) < every
    call_command("publish", out=str(root), full=True)
    assert f"published {every} files to" in capsys.readouterr().out


def test_the_static_copy_still_serves_the_live_bytes_after_incremental_rewrites(client, history, static_host):
    root, base = static_host
    with time_machine.travel(timezone.now(), tick=False):
        site_publish(out=root)
        old = Incident.objects.get(title="Spring outage")
        incident_add_update(incident=old, status="postmortem", body="Postmortem published.", automatic=False)
        Component.objects.filter(name="Posting").update(name="Posts")
        Incident.objects.create(title="Brand new", started_at=timezone.now(), detected_at=timezone.now())
        site_publish(out=root)
        written = site_publish(out=root)
        urls = site_urls()
        assert len(written) < len(urls)
        for url in urls:
            live = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
            static = requests.get(base + url, timeout=5)
            assert (live.status_code, static.status_code) == (200, 200), url
            assert static.content == live.content, url


def test_a_page_whose_rows_change_while_it_is_rendered_is_rendered_again_next_time(history, static_host,
                                                                                   monkeypatch):
    root, _ = static_host
    old = Incident.objects.get(title="Spring outage")

    class Meddling(publish.Client):
        def get(self, path, *args, **kwargs):
            response = super().get(path, *args, **kwargs)
            if path == f"/incidents/{old.public_id}":  # rendered, then changed before the run ends
                Incident.objects.filter(id=old.id).update(title="Spring outage (renamed)")
            return response

    monkeypatch.setattr(publish, "Client", Meddling)
    site_publish(out=root)
    assert json.loads((root / MANIFEST).read_text())["pages"][f"incidents/{old.public_id}.html"] is None
    monkeypatch.undo()
    assert pages_of(old) <= set(site_publish(out=root))
    assert "(renamed)" in (root / f"incidents/{old.public_id}.html").read_text()
    assert not pages_of(old) & set(site_publish(out=root))


def test_a_page_replayed_from_the_public_cache_is_not_recorded_as_up_to_date(client, history, static_host,
                                                                             settings):
    root, _ = static_host
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 30
    old = Incident.objects.get(title="Spring outage")
    assert client.get(f"/incidents/{old.public_id}").status_code == 200  # now in the cache
    site_publish(out=root)
    pages = json.loads((root / MANIFEST).read_text())["pages"]
    assert pages[f"incidents/{old.public_id}.html"] is None and pages[f"fr/incidents/{old.public_id}.html"]


def test_a_copy_from_the_previous_format_is_rendered_again_and_its_leftovers_removed(history, static_host):
    root, _ = static_host
    every = len(site_publish(out=root))
    (root / "incidents/deleted00000.html").write_text("an incident since deleted")
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    (root / MANIFEST).write_text("\n".join(sorted(names)))  # the list the first format kept
    assert len(site_publish(out=root)) == every
    assert not (root / "incidents/deleted00000.html").exists()


def test_the_static_copy_follows_last_checked_without_a_public_change(site, tmp_path, settings):  # noqa: F811
    """Issue 16: the copy said "Not checked yet" for minutes while every probe succeeded, because
    only a public change rewrote it. Each dispatch pass now rewrites it when its freshness moved."""
    from probes.models import ProbeLocation
    from probes.tasks import dispatch_due
    from statuspage.cache import static_copy_freshen

    settings.VIGIE_PUBLISH_DIR = str(tmp_path / "auto")
    settings.DISPATCH_EVERY_SECONDS = 0.25
    celery_app.conf.task_always_eager = True
    try:
        ProbeLocation.objects.update(last_run_at=None)
        dispatch_due()
        before = (tmp_path / "auto/index.html").read_text()
        # A time the first copy does not show: its own runs (dispatched eagerly above) are dated
        # when they ran, which under load can be exactly 3 s before now (a CI failure).
        now = timezone.now().replace(microsecond=0)
        checked = next(moment for moment in (now - timedelta(seconds=s) for s in range(3, 60))
                       if moment.isoformat() not in before and timezone.localtime(moment).isoformat() not in before)
        ProbeLocation.objects.update(last_run_at=checked)  # runs recorded, no status changed
        dispatch_due()
        after = (tmp_path / "auto/index.html").read_text()
        # Nothing moved since: no rewrite. (A longer dispatch interval for this last look: under
        # load, the eager rewrite above can outlast a few 0.25 s intervals, and the scheduler would
        # then rightly look silent, which is a change of freshness.)
        settings.DISPATCH_EVERY_SECONDS = 60
        assert static_copy_freshen() is False
    finally:
        celery_app.conf.task_always_eager = False
    assert checked.isoformat() not in before
    assert timezone.localtime(checked).isoformat() in after or checked.isoformat() in after


def test_each_file_over_a_kilobyte_is_written_with_its_gzip_and_brotli_encodings(history, static_host):
    import gzip

    import brotli

    root, _ = static_host
    site_publish(out=root)
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix not in (".gz", ".br")
             and not p.name.startswith(".")]
    large = [p for p in files if p.stat().st_size > 1024]
    assert root / "index.html" in large and root / "api/v2/summary.json" in large
    for page in large:
        assert gzip.decompress(Path(f"{page}.gz").read_bytes()) == page.read_bytes(), page
        assert brotli.decompress(Path(f"{page}.br").read_bytes()) == page.read_bytes(), page
    small = [p for p in files if p.stat().st_size < 1024]
    assert small and not any(Path(f"{p}.gz").exists() or Path(f"{p}.br").exists() for p in small)
    encoded = {p for p in root.rglob("*") if p.suffix in (".gz", ".br")}
    assert encoded == {Path(f"{p}{suffix}") for p in large for suffix in (".gz", ".br")}


def test_the_encodings_follow_the_page_when_it_changes_or_goes(history, static_host,
                                                               django_capture_on_commit_callbacks):
    import gzip

    import brotli

    root, _ = static_host
    gone = Incident.objects.get(title="Spring outage")
    site_publish(out=root)
    page = root / f"incidents/{gone.public_id}.html"
    before = (root / "index.html").read_bytes()
    assert Path(f"{page}.gz").is_file() and Path(f"{page}.br").is_file()
    with django_capture_on_commit_callbacks(execute=True):
        component_set_status(component=Component.objects.get(name="Posting"), status=ComponentStatus.MAJOR,
                             reason="test")
    gone.delete()
    site_publish(out=root)
    index = (root / "index.html").read_bytes()
    assert index != before and b"Major Service Outage" in index
    assert gzip.decompress((root / "index.html.gz").read_bytes()) == index
    assert brotli.decompress((root / "index.html.br").read_bytes()) == index
    assert not page.exists() and not Path(f"{page}.gz").exists() and not Path(f"{page}.br").exists()
    # A file that shrinks under a kilobyte loses the encodings of its larger past.
    stale = root / "api/v2/incidents/unresolved.json"
    Path(f"{stale}.gz").write_bytes(b"old")
    Path(f"{stale}.br").write_bytes(b"old")
    site_publish(out=root, full=True)
    if stale.stat().st_size < 1024:
        assert not Path(f"{stale}.gz").exists() and not Path(f"{stale}.br").exists()
    else:
        assert gzip.decompress(Path(f"{stale}.gz").read_bytes()) == stale.read_bytes()
