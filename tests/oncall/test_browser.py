"""Headless Chromium on the on-call dashboard: log in, watch a failure arrive without a reload,
post an incident update and find it on the public incident page."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from detection.models import Incident
from probes.models import ProbeLocation
from detection.simulation import demo_layout, record_run
from tests.statuspage.test_browser import CHROMEDRIVER, CHROMIUM, SCREENSHOTS, _chrome

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver",
)

PASSWORD = "correct horse battery"
# Two refresh periods and then some: the dashboard polls every 5 s.
WAIT_S = 20
FAILING_CELL = "td[data-probe='sandbox-post'][data-location='atlanta'][data-state='failing']"


@pytest.fixture(scope="module")
def chrome(tmp_path_factory):
    driver = _chrome(tmp_path_factory.mktemp("chromium-profile-oncall"))
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"oncall-{name}.png"))


def fill_and_post_update(driver, incident: Incident, body: str) -> None:
    """Type into the incident's update form and submit it. The region may be swapped by a refresh
    until the first keystroke (after it, a changed field holds refreshes back): retry on a stale element."""
    def attempt(d):
        try:
            form = d.find_element(By.CSS_SELECTOR, f"article[data-incident='{incident.public_id}'] form.update-form")
            field = form.find_element(By.NAME, "body")
            field.clear()
            field.send_keys(body)
            Select(form.find_element(By.NAME, "status")).select_by_value("identified")
            return form if field.get_property("value") == body else False
        except StaleElementReferenceException:
            return False

    form = WebDriverWait(driver, WAIT_S).until(attempt)
    screenshot(driver, "update-typed")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def test_a_failure_appears_without_reload_and_an_update_reaches_the_public_page(chrome, live_server,
                                                                                 django_user_model):
    demo_layout(locations=["atlanta", "sacramento"])
    django_user_model.objects.create_user("oncall", password=PASSWORD, is_staff=True)
    # The page is swapped in parts (fragments) and replaced on posting: an element found a moment
    # ago may be gone, which is a reason to look again, not a failure.
    wait = WebDriverWait(chrome, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    chrome.get(live_server.url + "/oncall/")
    assert "/oncall/login/" in chrome.current_url
    chrome.find_element(By.NAME, "username").send_keys("oncall")
    chrome.find_element(By.NAME, "password").send_keys(PASSWORD)
    chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(lambda d: d.current_url == live_server.url + "/oncall/")
    wait.until(lambda d: d.execute_script("return typeof window.oncallLoadedAt === 'number'"))
    assert not chrome.find_elements(By.CSS_SELECTOR, FAILING_CELL)
    # A mark that a reload would wipe: the failure must arrive by swapping the fragment in.
    chrome.execute_script("window.oncallTestMark = 'still here';")
    screenshot(chrome, "before")

    now = timezone.now()
    for location in ("atlanta", "sacramento"):
        placement = ProbeLocation.objects.select_related("probe", "location").get(probe__action="post",
                                                                                 location__name=location)
        for i in range(4):
            record_run(placement, now - timedelta(seconds=120 - 30 * i), failure_class="quota_exceeded",
                       status_code=429, platform_error="You are over the daily limit for sending posts.")
    incident = Incident.objects.get(resolved_at__isnull=True)

    # Read inside the wait: the cell may be swapped by the next refresh between finding and reading.
    cell = wait.until(lambda d: next((c.text for c in d.find_elements(By.CSS_SELECTOR, FAILING_CELL)), None))
    assert "quota_exceeded" in cell and "429" in cell and "over the daily limit" in cell
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"article[data-incident='{incident.public_id}']"))
    assert chrome.execute_script("return window.oncallTestMark") == "still here"
    assert chrome.execute_script("return performance.getEntriesByType('navigation').length") == 1
    # Screen readers hear the change once, from the polite live region.
    wait.until(lambda d: "1 open incident" in d.find_element(By.ID, "live").get_attribute("textContent"))
    assert "2 failing" in chrome.find_element(By.ID, "live").get_attribute("textContent")
    assert chrome.find_element(By.ID, "live").get_dom_attribute("aria-live") == "polite"
    screenshot(chrome, "failing")

    body = "On-call: the platform refuses writes with a daily-limit error; we have contacted them."
    fill_and_post_update(chrome, incident, body)
    wait.until(lambda d: "Update posted" in d.find_element(By.TAG_NAME, "body").text)
    screenshot(chrome, "posted")

    chrome.get(f"{live_server.url}/incidents/{incident.public_id}")
    timeline = chrome.find_element(By.CSS_SELECTOR, "ol.timeline")
    assert body in timeline.text and "Identified" in timeline.text
    screenshot(chrome, "public-incident")
    severe = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
