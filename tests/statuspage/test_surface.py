"""The pages a newcomer meets around the status page: 404 and 500 as Vigie pages in both languages,
the subscribe page linked from every public page and free of repository paths, and the API docs
(Swagger UI) served from this server's own files."""
from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.conf.urls.i18n import i18n_patterns
from django.urls import path

from vigie import urls as root_urls


def boom(request):
    raise RuntimeError("secret-internal-detail /srv/vigie/settings.py")


urlpatterns = root_urls.urlpatterns + i18n_patterns(path("boom", boom), prefix_default_language=False)
handler404 = root_urls.handler404
handler500 = root_urls.handler500


@pytest.mark.parametrize(("path", "words", "home"), [
    ("/no-such-page", "Page not found", 'href="/"'),
    ("/fr/no-such-page", "Page introuvable", 'href="/fr/"'),
])
def test_404_is_a_vigie_page_in_the_reader_language(client, db, path, words, home):
    response = client.get(path)
    assert response.status_code == 404
    html = response.content.decode()
    assert f"<h1>{words}</h1>" in html
    assert home in html  # the way back to the status summary
    assert 'href="/subscribe/"' in html and "/api/v2/summary.json" in html
    assert "Traceback" not in html and "Django" not in html and "urlpatterns" not in html.lower()


@pytest.mark.urls("tests.statuspage.test_surface")
@pytest.mark.parametrize(("path", "words", "home"), [
    ("/boom", "Something went wrong", 'href="/"'),
    ("/fr/boom", "Une erreur est survenue", 'href="/fr/"'),
])
def test_500_is_a_vigie_page_without_any_detail(db, path, words, home):
    response = Client(raise_request_exception=False).get(path)
    assert response.status_code == 500
    html = response.content.decode()
    assert f"<h1>{words}</h1>" in html and home in html and "/api/v2/summary.json" in html
    assert "secret-internal-detail" not in html and "Traceback" not in html and "settings.py" not in html


def test_the_500_page_falls_back_to_plain_words_when_it_cannot_be_drawn(rf, monkeypatch):
    from statuspage import views

    def broken(*args, **kwargs):
        raise RuntimeError("template engine down")

    monkeypatch.setattr(views, "render", broken)
    response = views.server_error(rf.get("/"))
    assert response.status_code == 500 and b"Something went wrong" in response.content
    assert b"template engine down" not in response.content


def test_every_public_page_links_to_subscribe(client, history):
    for page in ("/", "/fr/", "/history"):
        assert 'href="/subscribe/"' in client.get(page).content.decode(), page


def test_the_subscribe_page_explains_webhooks_in_words_and_shows_no_repository_path(client, db):
    for cookie in ("en", "fr"):
        html = client.get("/subscribe/", HTTP_ACCEPT_LANGUAGE=cookie).content.decode()
        assert not re.search(r"\b[\w-]+/[\w-]+\.(md|py|txt|yml|yaml)\b", html), "a repository path on a public page"
        assert "docs/" not in html
    html = client.get("/subscribe/").content.decode()
    assert "What is a webhook?" in html and "signed" in html


def test_the_api_docs_are_swagger_ui_served_from_this_server(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset  # shipped by drf-spectacular-sidecar
    # No inline script: the start-up script is its own request, allowed by script-src 'self'.
    assert not re.search(r"<script>(?!\s*</script>)", html)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    (script_url,) = [a for a in assets if "script" in a and a.startswith("/api/docs/")]
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


def test_the_schema_explains_the_token_authentication(client, db):
    schema = client.get("/api/schema/?format=json").json()
    assert "Authorization: Bearer" in schema["info"]["description"]
    assert "apitoken create" in schema["info"]["description"]
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())


def test_the_oncall_login_page_is_styled_like_the_dashboard(client, db):
    html = client.get("/oncall/login/").content.decode()
    assert "<style>" in html and 'class="card narrow"' in html and 'class="primary"' in html
    assert 'name="username"' in html and 'name="password"' in html


# --- the incident timeline and the response-time chart --------------------------------------------

def _update(status, seconds, automatic=True, change=True):
    from datetime import datetime, timedelta, timezone as dt_timezone
    from types import SimpleNamespace

    at = datetime(2026, 1, 1, 12, 0, tzinfo=dt_timezone.utc) + timedelta(seconds=seconds)
    affected = [{"code": "x", "name": "Posting", "old_status": "major_outage", "new_status": "partial_outage"}]
    return SimpleNamespace(status=status, created_at=at, automatic=automatic, affected_components=affected if change else None)


def test_a_status_change_superseded_within_the_minute_is_left_out_of_the_timeline():
    from statuspage.views import timeline

    resolved, monitoring, identified, investigating = (
        _update("resolved", 600), _update("monitoring", 599), _update("identified", 120), _update("investigating", 0))
    assert timeline([resolved, monitoring, identified, investigating]) == [resolved, identified, investigating]
    # An automatic note that changes no component (e.g. "runs succeed again") is not a status change.
    note = _update("monitoring", 590, change=False)
    assert timeline([resolved, note, investigating]) == [resolved, note, investigating]


def test_the_first_update_resolutions_and_words_written_by_a_person_always_stay():
    from statuspage.views import timeline

    person = _update("monitoring", 30, automatic=False)
    first = _update("investigating", 0)
    assert timeline([_update("resolved", 31, automatic=False), person, first])[1:] == [person, first]
    postmortem, resolved = _update("postmortem", 20, automatic=False), _update("resolved", 10)
    assert timeline([postmortem, resolved, first]) == [postmortem, resolved, first]


def test_the_incident_page_shows_the_collapsed_timeline(client, history):
    from datetime import timedelta

    from detection.models import IncidentUpdate

    incident = history["incident"]
    newest = incident.updates.first()
    IncidentUpdate.objects.create(incident=incident, status="monitoring", body="major→partial", automatic=True,
                                  created_at=newest.created_at - timedelta(seconds=1),
                                  affected_components=[{"code": "x", "name": "Posting", "old_status": "major_outage",
                                                        "new_status": "partial_outage"}])
    html = client.get(f"/incidents/{incident.public_id}").content.decode()
    assert "major→partial" not in html
    # The scenario's seven component changes in the last minute before "Resolved" are folded away.
    shown = re.findall(r"<li><strong>(\w[\w ]*)</strong>", html)
    assert shown == ["Resolved", "Monitoring", "Investigating"]
    assert "Runs succeed again" in html


def test_a_single_measured_hour_is_drawn_as_a_dot():
    from datetime import datetime, timedelta, timezone as dt_timezone
    from zoneinfo import ZoneInfo

    from statuspage.charts import latency_chart

    start = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
    series = [{"start": start + timedelta(hours=h), "p50": None, "p95": None, "runs": 0, "failures": 0}
              for h in range(24)]
    series[23].update(p50=120.0, p95=300.0, runs=3)
    chart = latency_chart(series, zone=ZoneInfo("UTC"))
    assert not chart.empty
    assert len(chart.p50_dots) == 1 and len(chart.p95_dots) == 1
    from django.template.loader import render_to_string

    svg = render_to_string("statuspage/_chart.html", {"chart": chart, "caption": "x"})
    assert svg.count("<circle") == 2
    series[22].update(p50=100.0, p95=200.0, runs=3)
    chart = latency_chart(series, zone=ZoneInfo("UTC"))
    assert chart.p50_dots == [] and chart.p50.count(",") == 2  # two points: a line, no dots


# --- day one ------------------------------------------------------------------------------------

def test_on_day_one_the_days_before_monitoring_are_drawn_quietly(client, db):
    from detection.simulation import demo_layout

    demo_layout(locations=["atlanta"])  # components created now: nothing before today was monitored
    for page, words in (("/", "not monitored yet"), ("/fr/", "pas encore surveillé")):
        html = client.get(page).content.decode()
        bar = html.split('<ol class="bar"', 1)[1].split("</ol>", 1)[0]
        assert bar.count('class="nodata before"') == 89
        assert bar.count(words) == 89
        # Today is the only day said to have no data: nothing has been measured yet (issue 16), and
        # the days before it existed are quiet instead.
        nodata = "no data" if page == "/" else "pas de données"
        assert bar.count(nodata) == 1 and bar.find(nodata) > bar.rfind(words)


def test_only_the_days_before_the_component_existed_are_quiet(client, db):
    from datetime import timedelta

    from django.utils import timezone

    from detection.models import Component
    from detection.simulation import demo_layout

    demo_layout(locations=["atlanta"])
    Component.objects.update(created_at=timezone.now() - timedelta(days=10))
    bar = client.get("/").content.decode().split('<ol class="bar"', 1)[1].split("</ol>", 1)[0]
    # 90 days shown: the 79 before it existed are quiet; the ten days since and today are drawn as measured.
    assert bar.count('class="nodata before"') == 79
    assert bar.split("</span>")[79].count("before") == 0


def test_french_month_abbreviations_are_lower_case_and_english_ones_capitalised():
    from datetime import date

    from django.template import Context, Template
    from django.utils import translation

    template = Template('{{ day|date:"j M Y" }}')
    with translation.override("fr"):
        assert template.render(Context({"day": date(2026, 12, 5)})) == "5 déc 2026"
    with translation.override("en"):
        assert template.render(Context({"day": date(2026, 12, 5)})) == "5 Dec 2026"
