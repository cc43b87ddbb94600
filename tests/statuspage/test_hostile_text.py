"""Hostile text (issue 17): nested Markdown, control characters, huge bodies. No public URL answers
500, both feeds stay valid XML, `publish` always writes, and each render is bounded."""
from __future__ import annotations

from datetime import timedelta

import feedparser
import lxml.etree
import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from detection.incidents import incident_add_update, incident_open_manual, incident_write_postmortem
from detection.models import Incident, IncidentUpdate, Maintenance
from statuspage.models import apitoken_create
from statuspage.publish import site_publish
from statuspage.sanitize import MAX_NESTING, XML_FORBIDDEN, clean_text, markdown_html

NESTED_LIST = "".join("  " * i + "- x\n" for i in range(600))  # ~600 levels, the 1.2 KB of the report
NESTED_QUOTE = "> " * 600 + "deep"
CONTROL = "before \x01 and \x0b and \x1f after"
PUBLIC = ["/", "/fr/", "/history", "/history.rss", "/history.atom", "/api/v2/summary.json",
          "/api/v2/incidents.json"]


def public_urls(incident: Incident | None = None, maintenance: Maintenance | None = None) -> list[str]:
    return PUBLIC + ([f"/incidents/{incident.public_id}"] if incident else []) + (
        [f"/incidents/{maintenance.public_id}"] if maintenance else [])


def assert_site_holds(client, urls) -> None:
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        if url.endswith((".rss", ".atom")):
            lxml.etree.fromstring(response.content)  # well-formed XML, or this raises
            parsed = feedparser.parse(response.content)
            assert not parsed.bozo, (url, parsed.get("bozo_exception"))


# --- the renderer ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [NESTED_LIST, NESTED_QUOTE, "1. " * 600 + "x", "*" * 2000 + "x"])
def test_deep_nesting_is_shown_as_plain_text_not_an_error(text):
    html = str(markdown_html(text))
    assert "x" in html or "deep" in html
    assert html.count("<ul>") + html.count("<blockquote>") + html.count("<ol>") <= MAX_NESTING


def test_bold_lists_and_links_still_render():
    html = str(markdown_html("**bold**\nnext line\n\n- one\n- two\n\n[a link](https://example.org/)"))
    assert "<strong>bold</strong><br" in html
    assert "<li>one</li>" in html and "<li>two</li>" in html
    assert '<a href="https://example.org/" rel="nofollow noopener">a link</a>' in html


def test_a_renderer_failure_degrades_to_escaped_plain_text(monkeypatch):
    from statuspage import sanitize

    def boom(_text):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(sanitize, "_render", boom)
    assert str(markdown_html("<b>x</b> **y**")) == "<p>&lt;b&gt;x&lt;/b&gt; **y**</p>"


def test_control_characters_are_removed():
    assert clean_text(CONTROL) == "before  and  and  after"
    assert clean_text("tab\tnew\nline\r") == "tab\tnew\nline\r"
    assert "\x01" not in str(markdown_html(CONTROL)) and "\x0b" not in str(markdown_html(CONTROL, plain=True))


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_renders_to_xml_safe_html(text):
    for plain in (False, True):
        html = str(markdown_html(text, plain=plain))
        assert not XML_FORBIDDEN.search(html)
        lxml.etree.fromstring(f"<div>{html}</div>".encode(), lxml.etree.HTMLParser())


@hsettings(max_examples=30, deadline=None)
@given(st.text(alphabet="[]()*_`<>!-#> \n1.\\", min_size=5000, max_size=10_000))
def test_markdown_punctuation_renders_quickly(text):
    # Python-Markdown took ~55 s on 20,000 "["; markdown-it-py is linear. No timing asserted: the
    # suite's timeout is the bound, and the render must simply finish and be safe.
    assert not XML_FORBIDDEN.search(str(markdown_html(text)))


# --- the pages and feeds -----------------------------------------------------------------------

@pytest.mark.parametrize("body", [NESTED_LIST, NESTED_QUOTE, CONTROL, "[" * 10_000])
def test_a_hostile_update_body_takes_no_public_url_down(client, db, body):
    incident = incident_open_manual(title="Posting failing", body="Opened.", status="investigating", components=[])
    incident_add_update(incident=incident, status="identified", body=body, automatic=False)
    incident_add_update(incident=incident, status="identified", body=body, automatic=True)
    assert_site_holds(client, public_urls(incident))


def test_control_characters_in_a_title_keep_the_feeds_valid(client, db):
    incident = incident_open_manual(title="Posting \x01 failing\x0b", body="Opened \x02.", status="investigating",
                                    components=[])
    assert Incident.objects.get(id=incident.id).title == "Posting  failing"
    # A row written around the model (a queryset update) still reaches the feed cleaned.
    Incident.objects.filter(id=incident.id).update(title="Posting \x01 again")
    IncidentUpdate.objects.filter(incident=incident).update(body="raw \x08 body")
    assert_site_holds(client, public_urls(incident))
    parsed = feedparser.parse(client.get("/history.atom").content)
    assert parsed.entries[0].title == "Posting  again"


def test_nested_maintenance_and_postmortem_take_no_page_down(client, db):
    now = timezone.now()
    maintenance = Maintenance.objects.create(title="Upgrade \x01", body=NESTED_LIST + CONTROL,
                                             scheduled_for=now - timedelta(minutes=5),
                                             scheduled_until=now + timedelta(hours=1))
    incident = incident_open_manual(title="Posting failing", body="Opened.", status="investigating", components=[])
    incident_write_postmortem(incident=incident, body=NESTED_QUOTE + CONTROL)
    assert_site_holds(client, public_urls(incident, maintenance))


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
@given(title=st.text(min_size=1, max_size=120), body=st.text(min_size=1, max_size=400))
def test_any_title_and_body_keep_pages_and_feeds_up(db, title, body):
    Incident.objects.all().delete()  # one test transaction for every example: start each afresh
    incident = incident_open_manual(title=title, body=body, status="investigating", components=[])
    incident_add_update(incident=incident, status="identified", body=body, automatic=True)
    assert_site_holds(Client(), public_urls(incident))


# --- the static copy -----------------------------------------------------------------------------

def test_publish_writes_every_page_with_hostile_text(db, tmp_path):
    incident = incident_open_manual(title="Bad \x01 title", body=NESTED_LIST, status="investigating", components=[])
    incident_add_update(incident=incident, status="identified", body=CONTROL, automatic=True)
    Incident.objects.filter(id=incident.id).update(title="Bad \x0b title")
    written = site_publish(out=tmp_path)
    assert f"incidents/{incident.public_id}.html" in written and "history.atom" in written
    for feed in ("history.atom", "history.rss"):
        lxml.etree.fromstring((tmp_path / feed).read_bytes())


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(body=st.text(min_size=1, max_size=300))
def test_publish_always_writes(db, tmp_path_factory, body):
    Incident.objects.all().delete()
    out = tmp_path_factory.mktemp("copy")
    incident_open_manual(title=body[:100], body=body, status="investigating", components=[])
    assert "history.rss" in site_publish(out=out, full=True)
    lxml.etree.fromstring((out / "history.rss").read_bytes())


# --- length limits -----------------------------------------------------------------------------

def test_the_api_refuses_an_over_long_body_with_a_clear_400(db, settings):
    _, token = apitoken_create(name="ops", scope="write")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    too_long = "x" * (settings.VIGIE_MAX_BODY_CHARS + 1)
    response = api.post("/api/v1/incidents/", {"title": "Down", "body": too_long, "status": "investigating"},
                        content_type="application/json")
    assert response.status_code == 400
    assert "VIGIE_MAX_BODY_CHARS" in str(response.json()["body"])
    created = api.post("/api/v1/incidents/", {"title": "Down", "body": "ok", "status": "investigating"},
                       content_type="application/json")
    assert created.status_code == 201, created.content
    public_id = created.json()["id"]
    response = api.post(f"/api/v1/incidents/{public_id}/updates/", {"status": "identified", "body": too_long},
                        content_type="application/json")
    assert response.status_code == 400 and "at most" in str(response.json())
    response = api.patch(f"/api/v1/incidents/{public_id}/",
                         {"postmortem_body": "y" * (settings.VIGIE_MAX_POSTMORTEM_CHARS + 1)},
                         content_type="application/json")
    assert response.status_code == 400 and "VIGIE_MAX_POSTMORTEM_CHARS" in str(response.json())


def test_the_dashboard_form_refuses_an_over_long_body(settings):
    from oncall.forms import IncidentUpdateForm, PostmortemForm

    settings.VIGIE_MAX_BODY_CHARS = 100
    form = IncidentUpdateForm(data={"status": "identified", "body": "x" * 101})
    assert not form.is_valid() and "at most 100" in str(form.errors["body"])
    form = IncidentUpdateForm(data={"status": "identified", "body": "fine \x01"})
    assert form.is_valid() and form.cleaned_data["body"] == "fine "
    assert PostmortemForm(data={"body": "x" * 101}).is_valid()
