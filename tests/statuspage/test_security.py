"""Web security: sanitized Markdown, headers and the CSP, CSRF, rate limits, `check --deploy`, and no
probe internals on any public URL."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import feedparser
import lxml.html
import pytest
from django.test import Client
from django.utils import timezone

from detection.incidents import incident_add_update, incident_open_manual, incident_write_postmortem
from probes.models import Account, Location, Platform, Probe, ProbeLocation
from detection.models import Component, Incident, Maintenance
from detection.simulation import record_run
from statuspage.models import apitoken_create
from statuspage.publish import site_urls
from statuspage.security import STYLE_BLOCK, content_security_policy, style_hash

BASE_DIR = Path(__file__).resolve().parents[2]
HOSTILE = ("**bold** and [a link](https://example.org/more) and [bad](javascript:alert(1)).\n\n"
           "<script>alert('script')</script> <img src=x onerror=\"alert('img')\"> "
           "<b onmouseover=\"alert('b')\">raw</b> <iframe src=\"https://evil.example\"></iframe> "
           "![pic](https://evil.example/p.png)")


def assert_inert(fragment: str) -> None:
    """Nothing in `fragment` runs, loads, or links anywhere but this site and http(s); bold and the link survive."""
    tree = lxml.html.fragment_fromstring(fragment, create_parent="div")
    assert not tree.xpath("//script | //img | //iframe | //b | //style | //object | //embed")
    assert not [a for e in tree.iter() for a in e.attrib if a.lower().startswith("on") or a == "style"]
    hrefs = tree.xpath("//a/@href")
    assert hrefs and all(h.startswith(("/", "http://", "https://", "mailto:")) for h in hrefs), hrefs
    assert tree.xpath("//strong[text()='bold']")
    (link,) = tree.xpath("//a[@href='https://example.org/more']")
    assert link.text == "a link" and link.get("rel") == "nofollow noopener"
    assert "alert('script')" in tree.text_content()  # shown as typed, not run


@pytest.fixture
def hostile_incident(db):
    incident = incident_open_manual(title="Posting failing", body=HOSTILE, status="investigating", components=[])
    incident_write_postmortem(incident=incident, body=HOSTILE)
    return Incident.objects.get(id=incident.id)


# --- Markdown, sanitized ----------------------------------------------------------------------

def test_a_hostile_update_is_inert_on_the_incident_page_while_bold_and_links_render(client, hostile_incident):
    page = lxml.html.fromstring(client.get(f"/incidents/{hostile_incident.public_id}").content)
    (timeline,) = page.xpath("//ol[@class='timeline']")
    assert_inert(lxml.html.tostring(timeline, encoding="unicode"))
    (postmortem,) = page.xpath("//section[h2='Postmortem']")
    assert_inert(lxml.html.tostring(postmortem, encoding="unicode"))
    assert not page.xpath("//script | //img | //iframe")
    index = lxml.html.fromstring(client.get("/").content)
    (active,) = index.xpath("//section[starts-with(@class, 'incident ')]")
    assert_inert(lxml.html.tostring(active, encoding="unicode"))


@pytest.mark.parametrize("path", ["/history.rss", "/history.atom"])
def test_a_hostile_update_is_inert_in_the_feeds(client, hostile_incident, path):
    parsed = feedparser.parse(client.get(path).content, sanitize_html=False)
    (entry,) = [e for e in parsed.entries if e.title == "Posting failing"]
    html = entry.content[0].value if path.endswith("atom") else entry.description
    assert "- <strong>bold</strong>" in html  # the first paragraph joins the label, as before
    assert_inert(html)


def test_a_hostile_maintenance_body_is_inert(client, db):
    now = timezone.now()
    maintenance = Maintenance.objects.create(title="Upgrade", body=HOSTILE, scheduled_for=now - timedelta(minutes=5),
                                             scheduled_until=now + timedelta(hours=1))
    page = lxml.html.fromstring(client.get(f"/incidents/{maintenance.public_id}").content)
    assert_inert(lxml.html.tostring(page.xpath("//div[@class='prose']")[0], encoding="unicode"))


def test_the_json_api_keeps_the_raw_text(client, hostile_incident):
    (incident,) = client.get("/api/v2/incidents.json").json()["incidents"]
    assert incident["incident_updates"][0]["body"] == HOSTILE


def test_an_automatic_update_is_shown_as_written_never_read_as_markdown(client, db):
    incident = incident_open_manual(title="Posting failing", body="Opened.", status="investigating", components=[])
    text = 'HTTP 429 “*over* the [limit](https://evil.example) <b>now</b>”'
    incident_add_update(incident=incident, status="investigating", body=text, automatic=True)
    page = lxml.html.fromstring(client.get(f"/incidents/{incident.public_id}").content)
    (automatic,) = page.xpath("//ol[@class='timeline']//div[@class='prose'][@lang='en']")
    assert automatic.text_content().strip() == text
    assert not automatic.xpath(".//a | .//em | .//b")


# --- Headers and the Content-Security-Policy --------------------------------------------------

def test_every_page_has_the_security_headers_and_a_strict_policy(client, hostile_incident):
    for path in ["/", "/fr/", f"/incidents/{hostile_incident.public_id}", "/history", "/subscribe/",
                 "/oncall/login/", "/api/v2/summary.json", "/history.atom"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        policy = response["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src 'self';" in policy and "unsafe" not in policy
        # Every inline <style> the page carries is allowed by its hash, and no style attribute is used.
        if response["Content-Type"].startswith("text/html"):
            html = response.content.decode()
            styles = STYLE_BLOCK.findall(html)
            assert styles and all(style_hash(css) in policy for css in styles), path
            assert not re.search(r"<[^>]+\sstyle=", html), path


def test_the_badges_keep_their_own_policy(client, db):
    assert client.get("/badges/status.svg")["Content-Security-Policy"] == \
        "default-src 'none'; style-src 'unsafe-inline'"


def test_only_the_browsable_api_may_use_inline_styles():
    assert "'unsafe-inline'" in content_security_policy("/api/v1/")
    assert "'unsafe-inline'" not in content_security_policy("/oncall/")


# --- CSRF ---------------------------------------------------------------------------------------

def test_the_subscribe_form_refuses_a_post_without_its_csrf_token(db):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/subscribe/", {"email": "ada@example.org"}).status_code == 403
    page = client.get("/subscribe/")
    token = lxml.html.fromstring(page.content).xpath("//input[@name='csrfmiddlewaretoken']/@value")[0]
    assert client.post("/subscribe/", {"email": "ada@example.org", "csrfmiddlewaretoken": token}).status_code == 200


# --- Rate limits --------------------------------------------------------------------------------

def test_subscribing_is_limited_per_client_address_per_hour(client, db, settings):
    settings.VIGIE_SUBSCRIBE_RATE = 5
    for i in range(5):
        assert client.post("/subscribe/", {"email": f"user{i}@example.org"}).status_code == 200
    refused = client.post("/subscribe/", {"email": "user5@example.org"})
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert b"Too many subscription attempts" in refused.content
    assert client.post("/subscribe/", {"email": "x@example.org"}, REMOTE_ADDR="192.0.2.7").status_code == 200


def test_behind_a_proxy_the_limit_counts_the_forwarded_address(client, db, settings):
    settings.VIGIE_SUBSCRIBE_RATE = 1
    settings.VIGIE_PROXY_HOPS = 1
    forwarded = {"HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert client.post("/subscribe/", {"email": "a@example.org"}, **forwarded).status_code == 200
    assert client.post("/subscribe/", {"email": "b@example.org"}, **forwarded).status_code == 429
    assert client.post("/subscribe/", {"email": "c@example.org"},
                       HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.2").status_code == 200


def test_the_management_api_is_throttled_per_token_reads_and_writes_apart(client, db, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"api_read": "3/min", "api_write": "2/min"}}
    first, second = (apitoken_create(name=name, scope="write")[1] for name in ("one", "two"))

    def call(method, token):
        return getattr(client, method)("/api/v1/components/", data={} if method == "post" else None,
                                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert [call("get", first).status_code for _ in range(3)] == [200] * 3
    refused = call("get", first)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert call("get", second).status_code == 200  # per token
    assert [call("post", first).status_code for _ in range(2)] == [400, 400]  # writes counted apart
    assert call("post", first).status_code == 429


# --- check --deploy -----------------------------------------------------------------------------

def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {**os.environ, "VIGIE_SECRET_KEY": secrets.token_urlsafe(60), "VIGIE_HTTPS": "1", "VIGIE_DEBUG": "0",
           "VIGIE_ALLOWED_HOSTS": "status.example.org", "VIGIE_DATA_DIR": str(tmp_path),
           "VIGIE_PUBLIC_URL": "https://status.example.org"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_https_mode_sends_hsts_and_redirects_plain_http(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
    assert client.get("/history.atom").status_code == 301
    secure = client.get("/api/v2/status.json", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200 and secure["Strict-Transport-Security"].startswith("max-age=31536000")


# --- No probe internals on public URLs ----------------------------------------------------------

PLANTED = {"username": "zq_prober_handle", "partner": "zq_partner_handle", "token": "zqtoken-7f3e9a1c55",
           "platform slug": "zq-platform-slug", "probe slug": "zq-probe-slug", "base url": "zq-platform-host.example"}


@pytest.fixture
def planted_site(db):
    platform = Platform.objects.create(name="Example Social", slug=PLANTED["platform slug"], kind="sandbox",
                                       base_url=f"https://{PLANTED['base url']}:8443/api")
    Account.objects.create(platform=platform, role="prober", username=PLANTED["username"], token=PLANTED["token"])
    Account.objects.create(platform=platform, role="partner", username=PLANTED["partner"], token=PLANTED["token"] + "p")
    location = Location.objects.create(name="atlanta")
    created = timezone.now() - timedelta(days=2)
    placements = []
    for action, name in (("post", "Posting"), ("read", "Reading")):
        probe = Probe.objects.create(name=name, slug=f"{PLANTED['probe slug']}-{action}", platform=platform,
                                     action=action, interval_s=30, timeout_s=10)
        placements.append(ProbeLocation.objects.create(probe=probe, location=location, created_at=created))
        Component.objects.create(name=name).probes.add(probe)
    return platform, placements


def leaks(client) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for url in site_urls():
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode().lower()
        for what, value in PLANTED.items():
            if value.lower() in body:
                found.setdefault(what, []).append(url)
    return found


def test_no_public_url_shows_account_names_tokens_probe_slugs_or_platform_urls(client, planted_site):
    _, (post, read) = planted_site
    now = timezone.now()
    for i in range(4):
        record_run(post, now - timedelta(seconds=150 - 30 * i), failure_class="quota_exceeded", status_code=429,
                   platform_error="You are over the daily limit for sending posts.")
        record_run(read, now - timedelta(seconds=150 - 30 * i))
    assert Incident.objects.filter(automatic=True).exists()
    Maintenance.objects.create(title="Upgrade", body="Planned.", scheduled_for=now + timedelta(days=1),
                               scheduled_until=now + timedelta(days=1, hours=1))
    assert len(site_urls()) > 20
    assert leaks(client) == {}


def test_a_platform_error_naming_the_account_does_not_reach_the_public(client, planted_site):
    _, (post, read) = planted_site
    now = timezone.now()
    for i in range(4):
        record_run(post, now - timedelta(seconds=150 - 30 * i), failure_class="auth", status_code=403,
                   platform_error=f"Account @{PLANTED['username']} is suspended")
    assert leaks(client) == {}
