"""Headless Chromium over the live site: clean console, no JavaScript needed, keyboard access, contrast, weight."""
from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from detection.models import Component, ComponentGroup, Incident, Maintenance
from detection.scenarios import SCENARIOS
from detection.simulation import demo_layout, history_fill, simulate_scenario

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver"),
    pytest.mark.django_db,  # the test database is set up; the rows are the module's `site`, committed
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,1600",
    "--lang=en-US",  # the English pages must not be redirected to French on a French-speaking machine
]
PAGE_LOAD_TIMEOUT_S = 30
MAX_TABS = 80  # focusable elements before the first bar cell: header, nav, component links, …
MAX_PAGE_BYTES = 100_000
MIN_SCREENSHOT_BYTES = 10_000
DEMO_NAMES = ["Posting", "Reposting", "Following", "Direct messages", "Timeline", "Post length limit"]
DAY = r"\b\d{1,2} [A-Z][a-z]{2}\b"  # "7 Mar", as the bar's tooltips write a day

# The February 2023 outage, shortened to five minutes to keep the suite quick.
FEB_2023 = dataclasses.replace(SCENARIOS["feb-2023"], warmup_s=60, fault_s=300)


# --- fixtures -----------------------------------------------------------------------------------

def _chrome(profile: Path, *, javascript: bool = True) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    prefs = {"intl.accept_languages": "en-US,en"}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    return driver


@pytest.fixture(scope="module")
def chrome(tmp_path_factory):
    driver = _chrome(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def chrome_without_javascript(tmp_path_factory):
    driver = _chrome(tmp_path_factory.mktemp("chromium-profile-nojs"), javascript=False)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker):
    """Four months of history, the feb-2023 outage twenty minutes ago and a maintenance tomorrow,
    served over HTTP; returns the base URL and the paths of the pages under test.

    Built once per module in each test process (12–18 s of evaluation) and committed, served by a
    live server of the module's own: every test here only reads the site, over HTTP. (pytest-django's
    `live_server` would flush the tables after each test.) The tables are flushed after the module's
    last test, as after a transactional test."""
    with django_db_blocker.unblock():
        server = LiveServer("localhost")
        server._live_server_modified_settings.enable()  # ALLOWED_HOSTS, as pytest-django's helper does
        try:
            now = timezone.now()
            demo_layout(locations=["atlanta", "sacramento"], created_at=now - timedelta(days=120))
            writes = ComponentGroup.objects.create(name="Writes", position=0)
            Component.objects.filter(name__in=["Posting", "Reposting", "Following", "Direct messages"]).update(group=writes)
            history_fill(days=100, now=now - timedelta(hours=3))
            simulate_scenario(FEB_2023, start=now - timedelta(minutes=20), interval_s=30)
            upcoming = Maintenance.objects.create(title="Network work", body="Timelines may be slow.",
                                                  scheduled_for=now + timedelta(days=1),
                                                  scheduled_until=now + timedelta(days=1, hours=2))
            upcoming.components.set(Component.objects.filter(name="Timeline"))
            incident = Incident.objects.order_by("-started_at").first()
            posting = Component.objects.get(name="Posting")
            yield {
                "url": server.url,
                "status": "/",
                "incident": f"/incidents/{incident.public_id}",
                "status-fr": "/fr/",
                "component": f"/components/{posting.public_id}",
                "not-found": "/no-such-page",
                "not-found-fr": "/fr/no-such-page",
                "api-docs": "/api/docs/",
            }
        finally:
            server._live_server_modified_settings.disable()
            server.stop()
            call_command("flush", verbosity=0, interactive=False)


# --- helpers ------------------------------------------------------------------------------------

def visit(driver, site: dict, page: str) -> None:
    """Load a page with an empty browser log, so what is logged afterwards is the page's."""
    driver.get_log("browser")
    driver.get(site["url"] + site[page])
    WebDriverWait(driver, PAGE_LOAD_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


# Every element with text of its own: its colour, the colour behind it (the first opaque
# background up the tree, with translucent ones blended in), and their WCAG 2.1 contrast ratio.
CONTRAST_JS = r"""
const parse = (value) => {
  let m = value.match(/^rgba?\(([^)]+)\)$/);
  if (m) {
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  m = value.match(/^color\(srgb ([^)]+)\)$/);
  if (m) {
    const p = m[1].split(/[\s\/]+/).filter(Boolean).map(Number);
    return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
  }
  return null;
};
const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
const luminance = (c) => {
  const [r, g, b] = c.slice(0, 3).map(v => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const hex = (c) => '#' + c.slice(0, 3).map(v => Math.round(v).toString(16).padStart(2, '0')).join('');
const background = (el) => {
  const layers = [];
  for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
    const bg = parse(getComputedStyle(node).backgroundColor);
    if (bg && bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
  }
  return layers.reverse().reduce((under, layer) => over(layer, under), [255, 255, 255, 1]);
};
const hidden = (el) => el.closest('.sr-only')
  || (el.closest('ol.bar li > span') && !el.closest('ol.bar li:hover, ol.bar li:focus-within'));
const results = [];
for (const el of document.body.querySelectorAll('*')) {
  const text = Array.from(el.childNodes).filter(n => n.nodeType === 3).map(n => n.textContent).join(' ')
    .replace(/\s+/g, ' ').trim();
  if (!text || hidden(el) || el.getClientRects().length === 0) continue;
  const style = getComputedStyle(el);
  if (style.visibility !== 'visible' || style.display === 'none') continue;
  const raw = el instanceof SVGElement ? style.fill : style.color;
  const fg = parse(raw);
  const bg = background(el);
  const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
  const large = size >= 24 || (size >= 18.66 && bold);
  const entry = {tag: el.tagName.toLowerCase(), cls: el.getAttribute('class') || '', text: text.slice(0, 60),
                 size, weight: style.fontWeight, required: large ? 3 : 4.5, bg: hex(bg)};
  if (!fg) { results.push(Object.assign(entry, {fg: raw, ratio: 0})); continue; }
  const color = over(fg, bg);
  const [l1, l2] = [luminance(color), luminance(bg)].sort((a, b) => b - a);
  results.push(Object.assign(entry, {fg: hex(color), ratio: Math.round((l1 + 0.05) / (l2 + 0.05) * 100) / 100}));
}
return results;
"""


# --- tests --------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["status", "incident", "status-fr", "component"])
def test_each_page_renders_with_a_clean_console_and_leaves_a_screenshot(chrome, site, page):
    assert requests.get(site["url"] + site[page], timeout=10).status_code == 200
    visit(chrome, site, page)
    entries = chrome.get_log("browser")
    for entry in entries:
        print(f"{entry['level']} {entry['source']}: {entry['message']}")
    severe = [e for e in entries if e["level"] == "SEVERE"]
    assert not severe, f"{page}: SEVERE browser console entries: {severe}"
    landmark = {"status": ".banner", "incident": "ol.timeline", "status-fr": ".banner",
                "component": "svg.chart polyline"}[page]
    assert chrome.find_element(By.CSS_SELECTOR, landmark)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{page}.png"
    assert chrome.save_screenshot(str(shot))
    assert shot.exists() and shot.stat().st_size > MIN_SCREENSHOT_BYTES


def test_the_french_page_is_french_with_a_way_back_to_english(chrome, site):
    visit(chrome, site, "status-fr")
    assert chrome.find_element(By.TAG_NAME, "html").get_dom_attribute("lang") == "fr"
    assert chrome.find_element(By.LINK_TEXT, "English").is_displayed()
    nav_links = chrome.find_elements(By.CSS_SELECTOR, "nav a")
    assert "/fr/history" in [a.get_dom_attribute("href") for a in nav_links]


def test_the_status_page_works_without_javascript(chrome_without_javascript, site):
    driver = chrome_without_javascript
    driver.get("data:text/html,<title>off</title><script>document.title = 'on'</script>")
    assert driver.title == "off", "the browser ran a script: JavaScript is not disabled"
    expected = requests.get(site["url"] + "/api/v2/status.json", timeout=10).json()["status"]["description"]
    driver.get(site["url"] + site["status"])
    banner = driver.find_element(By.CSS_SELECTOR, ".banner")
    assert banner.is_displayed() and expected in banner.text
    for name in DEMO_NAMES:
        assert driver.find_element(By.LINK_TEXT, name).is_displayed(), name
    assert driver.find_element(By.XPATH, "//section[@aria-label='Writes']//h3/span[text()='Writes']").is_displayed()


def test_a_bar_day_with_downtime_can_be_reached_by_keyboard_and_shows_its_details(chrome, site):
    visit(chrome, site, "status")
    for _ in range(MAX_TABS):
        ActionChains(chrome).send_keys(Keys.TAB).perform()
        if chrome.execute_script("return document.activeElement.matches('ol.bar li')"):
            break
    else:
        pytest.fail(f"no bar cell took the focus within {MAX_TABS} tabs")
    tooltip = chrome.switch_to.active_element.find_element(By.CSS_SELECTOR, ":scope > span")
    WebDriverWait(chrome, 5).until(lambda _: tooltip.rect["width"] > 1)
    assert re.search(DAY, tooltip.text), tooltip.text
    assert re.search(r"major outage|partial outage|degraded", tooltip.text), tooltip.text


def test_a_bar_day_without_downtime_is_not_focusable_but_readable_by_screen_readers(chrome, site):
    visit(chrome, site, "status")
    cells = chrome.find_elements(By.CSS_SELECTOR, "ol.bar li")
    quiet = [c for c in cells if "no downtime" in c.get_attribute("textContent")]
    assert quiet, "no day without downtime on the page"
    for cell in quiet[:5]:
        assert cell.get_dom_attribute("tabindex") is None
        assert re.search(DAY + ": no downtime", cell.get_attribute("textContent"))
        assert cell.find_element(By.CSS_SELECTOR, ":scope > span").rect["width"] <= 1  # visually hidden


@pytest.mark.parametrize("page", ["status", "incident"])
def test_all_visible_text_meets_wcag_aa_contrast(chrome, site, page):
    visit(chrome, site, page)
    results = chrome.execute_script(CONTRAST_JS)
    assert len(results) > 10, f"only {len(results)} text elements found: is the page empty?"
    failing = [r for r in results if r["ratio"] < r["required"]]
    assert not failing, f"{page}: {len(failing)} of {len(results)} text elements below WCAG AA contrast:\n" + "\n".join(
        f"  <{r['tag']} class={r['cls']!r}> {r['text']!r}: {r['fg']} on {r['bg']} = {r['ratio']}:1"
        f" (needs {r['required']}:1; {r['size']}px, weight {r['weight']})" for r in failing)


@pytest.mark.parametrize("page", ["status", "incident", "status-fr"])
def test_the_page_html_weighs_under_100_kb(site, page):
    response = requests.get(site["url"] + site[page], timeout=10)
    assert response.status_code == 200
    assert len(response.content) < MAX_PAGE_BYTES, f"{page}: {len(response.content)} bytes"


# --- the first ten minutes (issue 21): what a newcomer meets around the status page ---------------

PHONE, DESKTOP = (390, 844), (1200, 1600)


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize(("page", "subscribe"), [("status", "Subscribe to updates"),
                                                 ("status-fr", "S’abonner aux mises à jour")])
def test_the_subscribe_link_is_visible_on_the_status_page(chrome, site, page, subscribe, size):
    chrome.set_window_size(*size)
    try:
        visit(chrome, site, page)
        link = chrome.find_element(By.CSS_SELECTOR, 'nav a[href="/subscribe/"]')
        assert link.is_displayed()
        assert link.text in ("Subscribe to updates", subscribe)
        assert chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    finally:
        chrome.set_window_size(*DESKTOP)


@pytest.mark.parametrize(("page", "heading"), [("not-found", "Page not found"), ("not-found-fr", "Page introuvable")])
def test_the_404_page_is_a_vigie_page_and_leaves_a_screenshot(chrome, site, page, heading):
    assert requests.get(site["url"] + site[page], timeout=10).status_code == 404
    visit(chrome, site, page)
    assert chrome.find_element(By.TAG_NAME, "h1").text == heading
    assert chrome.find_element(By.CSS_SELECTOR, "header.site .brand").is_displayed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert chrome.save_screenshot(str(SCREENSHOTS / f"{page}.png"))


def test_the_api_docs_run_swagger_ui_offline_and_leave_a_screenshot(chrome, site):
    visit(chrome, site, "api-docs")
    # Swagger UI draws the operations from the schema: it ran, from this server's own files.
    WebDriverWait(chrome, PAGE_LOAD_TIMEOUT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    assert "Authorization: Bearer" in chrome.find_element(By.CSS_SELECTOR, ".swagger-ui .info").text
    resources = chrome.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert resources and all(r.startswith(site["url"]) for r in resources), resources
    severe = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert chrome.save_screenshot(str(SCREENSHOTS / "api-docs.png"))
