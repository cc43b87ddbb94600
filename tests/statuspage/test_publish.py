"""The static copy from `publish` serves what the live site serves, links and all."""
from __future__ import annotations

import re
import threading
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from probes.evaluation import component_set_status
from probes.models import Component, ComponentStatus, Incident, Maintenance
from statuspage.publish import site_publish, site_urls
from statuspage.celery import app as celery_app
from tests.statuspage.test_pages import FEB_2023, site  # noqa: F401  (the fixture)
from probes.simulation import simulate_scenario


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


@pytest.fixture
def history(site):  # noqa: F811
    simulate_scenario(FEB_2023, start=site + timedelta(minutes=1), interval_s=30)
    maintenance = Maintenance.objects.create(title="Network work", scheduled_for=site + timedelta(days=1),
                                             scheduled_until=site + timedelta(days=1, hours=1))
    maintenance.components.set(Component.objects.filter(name="Timeline"))
    Incident.objects.create(title="Spring outage", started_at=site - timedelta(days=150),
                            detected_at=site - timedelta(days=150), resolved_at=site - timedelta(days=150),
                            status="resolved")
    return site


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
    broken = [t for t in sorted(targets) if requests.get(base + t, timeout=5).status_code != 200]
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
    assert "Major System Outage" in (tmp_path / "auto/index.html").read_text()
    assert '"indicator": "critical"' in (tmp_path / "auto/api/v2/status.json").read_text()


def test_a_url_that_fails_leaves_the_previous_copy_whole(history, static_host, monkeypatch):
    root, _ = static_host
    site_publish(out=root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    Incident.objects.create(title="Brand new", started_at=timezone.now(), detected_at=timezone.now())
    from statuspage import publish

    urls = publish.site_urls()
    monkeypatch.setattr(publish, "site_urls", lambda: urls + ["/incidents/nosuchid0000"])  # answers 404
    with pytest.raises(publish.PublishError, match="nosuchid0000 answered 404"):
        site_publish(out=root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing half-new
