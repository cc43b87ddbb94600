"""`make screenshots`: the pictures in docs/screenshots/, taken from a throwaway site by headless Chromium.

Builds a fresh SQLite database in a temporary folder (never the one `make run` uses): the demo's
six components with four months of history, the feb-2023 outage twenty minutes ago (which the
platform's own status page has not acknowledged) and a maintenance tomorrow. Serves it on a free local port, and writes one PNG per page and width,
cropped to the viewport:

    status-desktop.png  incident-desktop.png  incident-fr-desktop.png  oncall-desktop.png  api-docs-desktop.png  not-found-desktop.png
    unacknowledged-desktop.png (the status page: the platform still declares "operational")
    status-phone.png    …

    make screenshots                                                   # every page, both widths
    .venv/bin/python tools/screenshots.py --out /tmp/s --page status --width desktop
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGES = ["status", "incident", "incident-fr", "oncall", "api-docs", "not-found", "unacknowledged"]
# The demo's French names, as examples/demo.yaml gives them.
FRENCH_NAMES = {"Posting": "Publication", "Reposting": "Partage", "Following": "Abonnement",
                "Direct messages": "Messages privés", "Timeline": "Fil d’actualité",
                "Post length limit": "Limite de longueur des messages"}
# Viewport (CSS pixels) and whether the browser behaves as a phone (touch, mobile viewport meta).
WIDTHS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}
PAGE_LOAD_TIMEOUT_S = 30
USERNAME, PASSWORD = "oncall", "screenshots-only"


def _django(data_dir: Path) -> None:
    """Point Vigie at the temporary folder before Django reads its settings."""
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "VIGIE_CACHE_URL"):
        os.environ.pop(name, None)
    os.environ["VIGIE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigie.settings"
    os.environ.setdefault("VIGIE_LOG_LEVEL", "ERROR")  # the 404 page's own warning is expected
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed() -> dict[str, str]:
    """The site the pictures show; returns each page's path."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from detection.models import Component, ComponentGroup, Incident, Maintenance
    from detection.scenarios import SCENARIOS
    from detection.simulation import demo_layout, history_fill, simulate_scenario
    from official.models import IncidentAcknowledgement, Indicator, OfficialSource

    call_command("migrate", verbosity=0)
    now = timezone.now()
    demo_layout(locations=["atlanta", "sacramento"], created_at=now - timedelta(days=120))
    for english, french in FRENCH_NAMES.items():
        Component.objects.filter(name=english).update(name_translations={"fr": french})
    writes = ComponentGroup.objects.create(name="Writes", position=0)
    Component.objects.filter(name__in=["Posting", "Reposting", "Following", "Direct messages"]).update(group=writes)
    history_fill(days=100, now=now - timedelta(hours=3))
    # The February 2023 outage under way: writes refused for the last ten minutes, up to now, so
    # the page shows an open incident and no stale data.
    feb_2023 = dataclasses.replace(SCENARIOS["feb-2023"], warmup_s=60, fault_s=600)
    simulate_scenario(feb_2023, start=now - timedelta(seconds=feb_2023.warmup_s + feb_2023.fault_s + 1),
                      interval_s=30, recovery_intervals=0)
    upcoming = Maintenance.objects.create(title="Network work", body="Timelines may be slow.",
                                          scheduled_for=now + timedelta(days=1),
                                          scheduled_until=now + timedelta(days=1, hours=2))
    upcoming.components.set(Component.objects.filter(name="Timeline"))
    get_user_model().objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    incident = Incident.objects.order_by("-started_at").first()
    # The platform's own status page still says all is well, and has not acknowledged the outage
    # (the rows official/ writes when it reads the platform's Statuspage).
    source = OfficialSource.objects.create(
        platform=incident.platform, kind="statuspage", url="https://status.sandbox.example",
        indicator=Indicator.NONE, indicator_since=now - timedelta(days=2), description="All Systems Operational",
        unacknowledged_after_s=300, last_polled_at=now, last_ok_at=now)
    IncidentAcknowledgement.objects.create(incident=incident, source=source)
    return {"status": "/", "incident": f"/incidents/{incident.public_id}",
            "incident-fr": f"/fr/incidents/{incident.public_id}", "oncall": "/oncall/",
            "api-docs": "/api/docs/", "not-found": "/no-such-page", "unacknowledged": "/"}


def serve() -> tuple[str, object]:
    """The site on a free local port, in a thread; returns its URL and the server (to shut down)."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def chrome(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--lang=en-US",
                 f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    return driver


def log_in(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/oncall/login/")
    driver.find_element(By.NAME, "username").send_keys(USERNAME)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_loaded(driver)


def wait_loaded(driver) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, PAGE_LOAD_TIMEOUT_S).until(lambda d: d.execute_script("return document.readyState") == "complete")


def shoot(driver, url: str, path: str, page: str, width: str, out: Path) -> Path:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    w, h, mobile = WIDTHS[width]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile})
    driver.get(url + path)
    wait_loaded(driver)
    if page == "api-docs":  # Swagger UI draws itself after the load event
        WebDriverWait(driver, PAGE_LOAD_TIMEOUT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    target = out / f"{page}-{width}.png"
    if not driver.save_screenshot(str(target)):
        raise SystemExit(f"Chromium wrote no picture of {path} at {width} width")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    parser.add_argument("--page", action="append", choices=PAGES, help="only this page (repeatable)")
    parser.add_argument("--width", action="append", choices=list(WIDTHS), help="only this width (repeatable)")
    args = parser.parse_args(argv)
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        print(f"screenshots: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vigie-screenshots-"))
    server = driver = None
    try:
        _django(work / "data")
        paths = seed()
        url, server = serve()
        driver = chrome(work / "chromium")
        pages = args.page or PAGES
        if "oncall" in pages:
            log_in(driver, url)
        for page in pages:
            for width in args.width or list(WIDTHS):
                target = shoot(driver, url, paths[page], page, width, args.out)
                print(f"{target.relative_to(args.out.parent) if args.out.parent in target.parents else target}"
                      f"  {target.stat().st_size // 1024} KB")
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
