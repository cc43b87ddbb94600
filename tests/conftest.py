"""Shared fixtures: a live sandbox platform over real HTTP, and a platform configured to watch it."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from probes.models import Account, Location, Platform, Probe, ProbeLocation
from detection.models import Component
from sandbox.config import SandboxConfig
from sandbox.server import make_server

PROBER_TOKEN = "test-prober-token-3f9a"
PARTNER_TOKEN = "test-partner-token-77c1"
CONTROL_TOKEN = "test-control-token-b20e"


class LiveSandbox:
    def __init__(self, server):
        self.server = server
        self.url = server.url

    def control(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
                                timeout=5, **kwargs)

    def fault(self, kind: str, action: str, location: str | None = None, duration_s: float | None = None) -> dict:
        body = {"kind": kind, "action": action}
        if location:
            body["location"] = location
        if duration_s:
            body["duration_s"] = duration_s
        response = self.control("POST", "/_sandbox/faults", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def clear_faults(self) -> None:
        assert self.control("DELETE", "/_sandbox/faults").status_code in (200, 204)

    def artifacts(self) -> dict:
        return self.control("GET", "/_sandbox/artifacts").json()["accounts"]

    def leftovers(self) -> int:
        """What probes left on the platform, less the fixtures kept on purpose: the partner's one repost
        target (if it exists) and its standing follow of the prober (the delivery probe's follower)."""
        artifacts = self.artifacts()
        total = sum(sum(counts.values()) for counts in artifacts.values())
        kept = min(artifacts.get("vigie_partner", {}).get("follows", 0), 1)
        for account in Account.objects.exclude(fixture_id=""):
            token = {"prober": PROBER_TOKEN, "partner": PARTNER_TOKEN}[account.role]
            found = requests.get(f"{self.url}/api/v1/statuses/{account.fixture_id}", timeout=5,
                                 headers={"Authorization": f"Bearer {token}"})
            kept += found.status_code == 200
        return total - kept


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database; on PostgreSQL, with commits that do not wait for the disk
    (`synchronous_commit = off`, for every session on that database: the Celery workers and web
    servers tests start too). A throwaway database needs no durability across a crash of the
    server, and the embedded leg's SQLite does not flush on every commit either (WAL,
    synchronous=NORMAL). Transactional tests commit thousands of times: 2–3 ms each on this
    machine's disk, under 1 ms without the flush."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            name = connection.ops.quote_name(connection.settings_dict["NAME"])
            cursor.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
            cursor.execute("SET synchronous_commit = off")
    yield
    # The process's long-lived threads (the runs' pool, the recorder, the health checks: made once
    # per process, as in a worker) keep their connections open until the process exits, and
    # PostgreSQL does not drop a database that sessions still use. No test runs after this.
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()")


def pytest_runtest_setup(item):
    """`@pytest.mark.postgres`: the test needs PostgreSQL (a race SQLite's one writer cannot have, a
    PostgreSQL-only adapter); skipped on the embedded leg, run on the PostgreSQL one."""
    if item.get_closest_marker("postgres"):
        from django.conf import settings

        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def public_cache(settings):
    """Each test starts with an empty public cache, switched off: a test's transaction never
    commits, so the change announcements that invalidate it never fire. Cache tests turn it on.
    Each process's copies in memory are emptied too: they outlive a test as they outlive a request."""
    from django.core.cache import cache

    from statuspage.cache import process_forget

    cache.clear()
    process_forget()
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 0
    settings.VIGIE_PUBLIC_STALE_SECONDS = 0  # a render in a thread would not see the test's data
    yield cache
    process_forget()
    try:
        cache.clear()
    except Exception:  # a test that pointed the cache at a server that is not there
        pass


@pytest.fixture(autouse=True)
def loopback_targets_allowed(settings, monkeypatch):
    """The sandbox and test receivers listen on 127.0.0.1: allow loopback past the SSRF guard, here
    and in the workers tests start, as `manage.py up` does for the demo.
    tests/platforms/test_ssrf_guard.py takes the allowance away."""
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = ["loopback"]
    monkeypatch.setenv("VIGIE_ALLOW_PRIVATE_TARGETS", "loopback")


def sandbox_serving(**settings):
    """A sandbox (SandboxConfig `settings`, e.g. compat="takahe") on a free port, in a thread, for
    as long as the fixture that yields from this lives."""
    config = SandboxConfig(prober_token=PROBER_TOKEN, partner_token=PARTNER_TOKEN, control_token=CONTROL_TOKEN,
                           **settings)
    server = make_server("127.0.0.1", 0, config=config)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def sandbox_fresh(server):
    """The running sandbox, reset before and after one test."""
    live = LiveSandbox(server)
    live.control("POST", "/_sandbox/reset")
    yield live
    live.control("POST", "/_sandbox/reset")


@pytest.fixture(scope="session")
def sandbox_server():
    yield from sandbox_serving()


@pytest.fixture
def sandbox(sandbox_server):
    yield from sandbox_fresh(sandbox_server)


@pytest.fixture
def locations(db):
    return [Location.objects.create(name="sacramento"), Location.objects.create(name="atlanta")]


@pytest.fixture
def platform(db, sandbox):
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url=sandbox.url)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    return platform


def make_probe(platform: Platform, action: str, locations: list[Location], *, timeout_s: float = 5,
               interval_s: int = 30, component: str | None = None) -> Probe:
    probe = Probe.objects.create(name=action.title(), slug=f"{platform.slug}-{action}", platform=platform,
                                 action=action, interval_s=interval_s, timeout_s=timeout_s)
    for location in locations:
        ProbeLocation.objects.create(probe=probe, location=location, next_run_at=timezone.now() - timedelta(seconds=1))
    if component:
        Component.objects.get_or_create(name=component)[0].probes.add(probe)
    return probe
