"""The public pages: status page sections, uptime bars, history, component page, badges, languages
and the response cache."""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone as dt_timezone
from xml.etree import ElementTree

import lxml.html
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from detection.evaluation import component_set_status
from detection.incidents import incident_add_update
from detection.models import Component, ComponentGroup, ComponentStatus, Incident, Maintenance
from probes.models import ProbeLocation
from detection.scenarios import SCENARIOS
from detection.simulation import demo_layout, history_fill, record_run, simulate_scenario

FEB_2023 = dataclasses.replace(SCENARIOS["feb-2023"], warmup_s=60, fault_s=300)


SITE_AT = datetime(2026, 11, 20, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def site(db):
    """The demo's components, three days old, the writes grouped, fresh runs from both locations;
    at noon, so that the last hour is today."""
    with time_machine.travel(SITE_AT, tick=True):
        yield site_build()


def site_build():
    now = timezone.now()
    demo_layout(locations=["atlanta", "sacramento"], created_at=now - timedelta(days=3))
    # Measured since created (the tests write their history over these three days).
    Component.objects.update(created_at=now - timedelta(days=3), status=ComponentStatus.OPERATIONAL)
    return _grouped(now)


def _grouped(now):
    writes = ComponentGroup.objects.create(name="Writes", position=0)
    Component.objects.filter(name__in=["Posting", "Reposting", "Following", "Direct messages"]).update(group=writes)
    for placement in ProbeLocation.objects.all():
        record_run(placement, now - timedelta(seconds=20), latency_ms=120)
    return now


def get(client, path, **headers):
    response = client.get(path, **headers)
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


def test_the_status_page_shows_groups_statuses_in_words_and_uptime(client, site):
    component_set_status(component=Component.objects.get(name="Following"), status=ComponentStatus.PARTIAL,
                         reason="test", at=site - timedelta(hours=1))
    html = get(client, "/")
    writes = html.split("Writes", 1)[1].split("</section>", 1)[0]
    assert "Partial outage" in writes.split("</h3>", 1)[0]  # the group shows its worst member
    assert all(name in writes for name in ("Posting", "Reposting", "Following", "Direct messages"))
    assert "Timeline" not in writes
    assert "◐" in html and "Minor Service Outage" in html  # a shape beside the words, not colour alone
    assert html.count('<ol class="bar"') == 6
    assert "(major outage time + 0.3 × partial outage time)" in html  # the formula is stated


def test_a_day_with_downtime_is_focusable_and_says_what_happened(client, site):
    following = Component.objects.get(name="Following")
    component_set_status(component=following, status=ComponentStatus.MAJOR, reason="t", at=site - timedelta(minutes=50))
    component_set_status(component=following, status=ComponentStatus.OPERATIONAL, reason="t",
                         at=site - timedelta(minutes=10))
    html = get(client, "/")
    bar = html.split('aria-label="Following:', 1)[1].split("</ol>", 1)[0]
    today = bar.rsplit("<li", 1)[1]
    assert 'tabindex="0"' in today and "40 min major outage" in today
    assert bar.count('tabindex="0"') == 1  # quiet days are read, not tabbed through
    # The days before the component existed are quiet: "not monitored yet", not "no data".
    assert bar.count("no downtime") == 3 and bar.count("not monitored yet") == 86 and bar.count("no data") == 0


def test_each_day_of_a_bar_is_one_item_holding_its_own_words(client, site):
    # The bar leaves out each </li> (4,500 of them on a page of 50 components): the parsed page
    # must still have one item per day, each with its words inside it, nothing between them.
    page = lxml.html.fromstring(get(client, "/"))
    bars = page.xpath("//ol[@class='bar']")
    assert len(bars) == 6
    for bar in bars:
        days = bar.xpath("./li")
        assert len(days) == 90 and len(bar) == 90 and not (bar.text or "").strip()
        for day in days:
            (words,) = day.xpath("./span")
            assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}: .+", words.text_content())
            assert not (words.tail or "").strip() and len(day) == 1


def test_active_and_upcoming_maintenance_and_recent_past_incidents_show(client, site):
    timeline = Component.objects.filter(name="Timeline")
    upcoming = Maintenance.objects.create(title="Network work", scheduled_for=site + timedelta(days=1),
                                          scheduled_until=site + timedelta(days=1, hours=1))
    active = Maintenance.objects.create(title="Cache rebuild", scheduled_for=site - timedelta(minutes=5),
                                        scheduled_until=site + timedelta(hours=1))
    upcoming.components.set(timeline)
    active.components.set(timeline)
    recent = Incident.objects.create(title="Recent outage", started_at=site - timedelta(days=3),
                                     detected_at=site - timedelta(days=3), resolved_at=site - timedelta(days=2),
                                     status="resolved")
    Incident.objects.create(title="Old outage", started_at=site - timedelta(days=20),
                            detected_at=site - timedelta(days=20), resolved_at=site - timedelta(days=19),
                            status="resolved")
    html = get(client, "/")
    assert "Maintenance in progress" in html and "Cache rebuild" in html
    assert "Scheduled maintenance" in html and "Network work" in html
    assert "Recent outage" in html and f"/incidents/{recent.public_id}" in html
    assert "Old outage" not in html  # past incidents: the last 14 days only
    assert f"/incidents/{upcoming.public_id}" in html
    maintenance_page = get(client, f"/incidents/{upcoming.public_id}")
    assert "Network work" in maintenance_page and "Scheduled" in maintenance_page


def test_a_stale_page_does_not_claim_health(client, site):
    Component.objects.update(stale=True)
    html = get(client, "/")
    assert "Last known: All Systems Operational" in html and "Monitoring is delayed" in html
    assert 'class="banner none"' not in html


def test_the_incident_page_gives_evidence_and_duration_with_its_uncertainty(client, site):
    simulate_scenario(FEB_2023, start=site + timedelta(minutes=1), interval_s=30)  # after the fixture's runs
    incident = Incident.objects.get()
    html = get(client, f"/incidents/{incident.public_id}")
    assert "quota_exceeded" in html and "HTTP 429" in html and "atlanta" in html and "sacramento" in html
    assert "5 min" in html and "± 30 s" in html


def test_automatic_updates_read_in_french_on_the_french_page_and_stay_english_elsewhere(client, site):
    Component.objects.filter(name="Posting").update(name_translations={"fr": "Publication"})
    simulate_scenario(FEB_2023, start=site + timedelta(minutes=1), interval_s=30)
    incident = Incident.objects.get()
    bodies = list(incident.updates.order_by("created_at", "id").values_list("body", "text"))
    assert bodies[0][0].startswith("Vigie detected Posting, ") and bodies[0][1]["key"] == "opened"
    assert bodies[-1][0].startswith("Resolved: every affected action works again.") and bodies[-1][1]["key"] == "resolved"
    french = get(client, f"/fr/incidents/{incident.public_id}")
    assert "Vigie a détecté une panne de Publication, " in french
    assert "écritures refusées pour limite quotidienne atteinte; HTTP 429; depuis atlanta, sacramento" in french
    assert "Résolu : toutes les actions touchées fonctionnent de nouveau. La panne a duré 5 min" in french
    assert "Vigie detected" not in french and "Resolved: every" not in french
    assert incident.title == ("Posting, reposting, following and direct messages failing — platform read-only: "
                              "writes refused with a daily-limit error")
    assert ("<h1>Publication, partage, abonnement et messages privés en échec — plateforme en lecture seule : "
            "écritures refusées pour limite quotidienne atteinte</h1>") in french
    assert "Publication, partage, abonnement et messages privés en échec" in get(client, "/fr/history")
    english = get(client, f"/incidents/{incident.public_id}?hl=en")
    assert "Vigie detected Posting, " in english and "Resolved: every affected action works again." in english
    assert "Publication" not in english and "Vigie a détecté" not in english
    assert f'<h1 lang="en">{incident.title}</h1>' in english
    api = client.get("/api/v2/incidents.json", HTTP_ACCEPT_LANGUAGE="fr").json()["incidents"][0]
    shown = [u["body"] for u in api["incident_updates"]]
    assert shown[-1] == bodies[0][0] and shown[0] == bodies[-1][0] and set(shown) <= {b for b, _ in bodies}
    assert "Vigie a détecté" not in client.get("/history.atom", HTTP_ACCEPT_LANGUAGE="fr").content.decode()


def test_an_update_without_a_text_key_or_with_a_broken_one_shows_its_stored_body(db):
    from detection.texts import text_render

    assert text_render({}, fallback="As written", language="fr") == "As written"
    assert text_render({"key": "nope"}, fallback="As written", language="fr") == "As written"
    assert text_render({"key": "resolved", "params": {}}, fallback="As written", language="fr") == "As written"
    assert text_render({"key": "resolved", "params": {"duration": "2 min", "uncertainty": "30 s"}},
                       fallback="As written", language="en") == "As written"
    changed = {"key": "changed", "params": {"changes": [
        {"name": "Posting", "names": {"fr": "Publication"}, "old_status": "major_outage", "new_status": "partial_outage"}]}}
    assert text_render(changed, fallback="x", language="fr") == "Publication : panne majeure → panne partielle"


def test_an_automatic_title_names_translated_components_and_locations_in_french(db):
    from detection.texts import title_render, title_shown

    text = {"key": "failing", "params": {
        "components": [{"name": "Posting", "names": {"fr": "Publication"}}, {"name": "Timeline", "names": {}}],
        "platform": "Sandbox", "everything": False, "degraded": False, "locations": ["atlanta"],
        "class": "server_error"}}
    assert title_render(text, language="en") == "Posting and timeline failing from Atlanta — server errors"
    assert title_render(text, language="fr") == "Publication et timeline en échec depuis Atlanta — erreurs du serveur"
    assert title_shown("Stored", text, language="en") == "Stored"
    assert title_shown("Stored", {"key": "failing", "params": {}}, language="fr") == "Stored"


def test_history_lists_incidents_by_month_and_links_to_older_months(client, site):
    old = Incident.objects.create(title="Spring outage", started_at=site - timedelta(days=200),
                                  detected_at=site - timedelta(days=200), resolved_at=site - timedelta(days=200),
                                  status="resolved")
    Incident.objects.create(title="This month", started_at=site, detected_at=site, status="investigating")
    html = get(client, "/history")
    assert "This month" in html and "Spring outage" not in html
    assert html.count("<h2>") == 3
    month = timezone.localtime(old.started_at).strftime("%Y-%m")
    older = html.split('/history/', 1)[1][:7]
    assert get(client, f"/history/{month}").count("Spring outage") == 1
    assert older < timezone.localtime(site).strftime("%Y-%m")
    assert client.get("/history/2999-01").status_code == 404
    assert client.get("/history/2026-13").status_code == 404


def test_the_component_page_draws_p50_and_p95_per_hour_from_the_rollups(client, site):
    posting = Component.objects.get(name="Posting")
    placement = ProbeLocation.objects.filter(probe__slug="sandbox-post").first()
    for minutes in (90, 80, 70):
        record_run(placement, site - timedelta(minutes=minutes), latency_ms=800)
    html = get(client, f"/components/{posting.public_id}")
    assert html.count('<svg class="chart"') == 2
    points = html.split('<polyline points="', 2)[1].split('"', 1)[0].split()
    assert len(points) >= 2  # an hour with the slow runs, the hour with the fresh ones
    assert "800 ms" in html or "861 ms" in html  # the slow hour's p50 in the table (bucket bound)
    assert client.get("/components/nosuchid0000").status_code == 404


def test_badges_are_svg_with_the_status_and_uptime_in_words(client, site):
    dms = Component.objects.get(name="Direct messages")
    component_set_status(component=dms, status=ComponentStatus.MAJOR, reason="t", at=site - timedelta(hours=6))
    page = client.get("/badges/status.svg")
    assert page["Content-Type"].startswith("image/svg+xml")
    assert ElementTree.fromstring(page.content).find("{http://www.w3.org/2000/svg}title").text == \
        "status: major service outage"
    badge = get(client, f"/components/{dms.public_id}/status.svg")
    assert "Direct messages: major outage" in badge
    uptime = ElementTree.fromstring(client.get(f"/components/{dms.public_id}/uptime.svg").content)
    value = uptime.find("{http://www.w3.org/2000/svg}title").text.split(": ")[1]
    assert value.endswith("%") and 90 < float(value[:-1]) < 95  # 6 h of 3 days down
    assert client.get("/components/nosuchid0000/status.svg").status_code == 404


def test_a_french_reader_is_sent_to_the_french_page_and_can_switch_back(client, site):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9,en;q=0.5")
    assert response.status_code == 302 and response["Location"] == "/fr/"
    assert "Accept-Language" in response["Vary"]
    html = get(client, "/fr/")
    assert '<html lang="fr">' in html and "Tous les systèmes sont opérationnels" in html
    assert 'href="/?hl=en"' in html and 'href="/fr/history"' in html
    english = client.get("/?hl=en", HTTP_ACCEPT_LANGUAGE="fr")
    assert english.status_code == 200 and "All Systems Operational" in english.content.decode()
    assert client.cookies["vigie_language"].value == "en"
    assert client.get("/history", HTTP_ACCEPT_LANGUAGE="fr").status_code == 200  # the choice is kept


def test_a_component_name_translated_in_the_config_shows_on_the_french_pages_only(client, site):
    posting = Component.objects.get(name="Posting")
    posting.name_translations = {"fr": "Publication"}
    posting.save(update_fields=["name_translations"])
    french = get(client, "/fr/")
    assert ">Publication</a>" in french and ">Posting</a>" not in french
    assert "<h1>Publication</h1>" in get(client, f"/fr/components/{posting.public_id}")
    english = get(client, "/?hl=en")
    assert ">Posting</a>" in english and "Publication" not in english
    assert "<h1>Posting</h1>" in get(client, f"/components/{posting.public_id}?hl=en")
    for path in ("/api/v2/summary.json", "/api/v2/components.json"):  # the Statuspage JSON keeps the name
        names = [c["name"] for c in client.get(path, HTTP_ACCEPT_LANGUAGE="fr").json()["components"]]
        assert "Posting" in names and "Publication" not in names
    assert "Publication" not in client.get("/history.atom", HTTP_ACCEPT_LANGUAGE="fr").content.decode()


def test_machine_documents_are_never_redirected_by_language(client, site):
    for path in ("/api/v2/summary.json", "/history.atom", "/badges/status.svg"):
        assert client.get(path, HTTP_ACCEPT_LANGUAGE="fr").status_code == 200


def _translations(entry: str) -> list[str]:
    """The msgstr texts of one .po entry (msgstr, or msgstr[0], msgstr[1] …), continuation lines joined."""
    texts, current = [], None
    for line in entry.splitlines():
        if line.startswith("msgstr"):
            current = len(texts)
            texts.append(line.split(" ", 1)[1].strip('"'))
        elif line.startswith('"') and current is not None:
            texts[current] += line.strip('"')
        elif not line.startswith('"'):
            current = None
    return texts


def test_every_french_message_is_translated_and_compiled():
    from gettext import GNUTranslations
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "locale/fr/LC_MESSAGES"
    entries = [e for e in (folder / "django.po").read_text().split("\n\n") if "msgid" in e]
    untranslated = [e for e in entries[1:] if any(not text for text in _translations(e))]
    fuzzy = [e for e in entries if "#, fuzzy" in e]
    assert len(entries) > 50 and not untranslated and not fuzzy
    with open(folder / "django.mo", "rb") as compiled:
        catalog = GNUTranslations(compiled)
    assert catalog.gettext("All Systems Operational") == "Tous les systèmes sont opérationnels"
    assert len(catalog._catalog) >= len(entries)  # the .mo holds every entry of the .po (compile it: make messages)


def test_a_cached_page_is_served_until_a_change_is_announced(client, site, settings,
                                                             django_capture_on_commit_callbacks):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 60
    first = client.get("/api/v2/status.json")
    second = client.get("/api/v2/status.json")
    assert (first["X-Cache"], second["X-Cache"]) == ("miss", "hit") and first.content == second.content
    with CaptureQueriesContext(connection) as queries:
        client.get("/")
        client.get("/")
    assert len(queries) > 0
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/")["X-Cache"] == "hit"
    assert len(queries) == 0  # a hit costs the database nothing
    with django_capture_on_commit_callbacks(execute=True):
        component_set_status(component=Component.objects.get(name="Posting"), status=ComponentStatus.MAJOR,
                             reason="test")
    third = client.get("/api/v2/status.json")
    assert third["X-Cache"] == "miss" and third.json()["status"]["indicator"] == "critical"
    with django_capture_on_commit_callbacks(execute=True):
        incident = Incident.objects.create(title="Posting failing", started_at=site, detected_at=site)
        incident_add_update(incident=incident, status="investigating", body="Looking.", automatic=False)
    assert "Posting failing" in get(client, "/")


@pytest.mark.parametrize("path", ["/", "/api/v2/summary.json"])
def test_queries_do_not_grow_from_one_day_to_one_year_of_history(client, site, path):
    history_fill(days=1, now=site)

    def count():
        with CaptureQueriesContext(connection) as queries:
            get(client, path)
        return len(queries)

    day = count()
    filled = history_fill(days=365, now=site - timedelta(days=1), seed=2)
    assert filled["incidents"] > 100 and filled["status_changes"] > 200
    assert count() == day


def test_the_pages_keep_working_when_the_cache_server_is_down(client, site, settings,
                                                              django_capture_on_commit_callbacks):
    settings.VIGIE_PUBLIC_CACHE_SECONDS = 60
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens there
    for path in ("/", "/api/v2/summary.json", "/history.atom", "/badges/status.svg"):
        assert client.get(path).status_code == 200, path
    with django_capture_on_commit_callbacks(execute=True):
        component_set_status(component=Component.objects.get(name="Posting"), status=ComponentStatus.MAJOR,
                             reason="test")  # the change commits even though nobody can be told
    assert Component.objects.get(name="Posting").status == ComponentStatus.MAJOR
    assert "Major Service Outage" in get(client, "/")


def test_a_badge_escapes_a_hostile_component_name(client, site):
    Component.objects.filter(name="Posting").update(name='P" onload="alert(1)')
    component = Component.objects.get(name__startswith='P"')
    badge = client.get(f"/components/{component.public_id}/status.svg")
    root = ElementTree.fromstring(badge.content)
    assert "onload" not in root.attrib and root.attrib["aria-label"].startswith('P" onload=')
    assert badge["Content-Security-Policy"].startswith("default-src 'none'")


def test_a_cancelled_maintenance_is_listed_nowhere_and_its_page_says_so(client, site):
    cancelled = Maintenance.objects.create(title="Never happened", scheduled_for=site - timedelta(hours=2),
                                           scheduled_until=site - timedelta(hours=1), cancelled=True)
    assert "Never happened" not in get(client, "/api/v2/scheduled-maintenances.json")
    assert "Never happened" not in get(client, "/history")
    page = get(client, f"/incidents/{cancelled.public_id}")
    assert "cancelled" in page and "Maintenance is in progress" not in page and "Completed" not in page


def test_a_component_that_joins_an_incident_shows_its_own_start_on_the_timeline_not_the_incidents(client, site):
    """Posting fails first; direct messages join two minutes later. The incident keeps Posting's
    start; the timeline says, in Vigie's words, from when direct messages were affected."""
    start = site + timedelta(minutes=1)
    places = {(p.probe.action, p.location.name): p
              for p in ProbeLocation.objects.select_related("probe", "location").filter(probe__action__in=["post", "dm"])}
    for i in range(12):
        at = start + timedelta(seconds=30 * i)
        for (action, _), placement in sorted(places.items(), key=lambda kv: kv[0]):
            failing = (action == "post" and i < 8) or (action == "dm" and 4 <= i < 8)
            record_run(placement, at + timedelta(seconds=1), failure_class="server_error" if failing else "",
                       status_code=503 if failing else None)
    incident = Incident.objects.get()
    assert set(incident.components.values_list("name", flat=True)) == {"Posting", "Direct messages"}
    dm_start = datetime.fromisoformat(incident.evidence["component_starts"]["Direct messages"])
    assert dm_start - incident.started_at >= timedelta(minutes=2)  # its own start, the incident's kept
    html = get(client, f"/incidents/{incident.public_id}")
    entry = f"Direct messages affected from {dm_start:%H:%M:%S} UTC (its first failing run)."
    assert entry in html
    assert "Posting affected from" not in html  # it began the incident: its start is the incident's
    assert f'<time datetime="{incident.started_at:%Y-%m-%dT%H:%M:%S}' in html  # still the incident's start
    Component.objects.filter(name="Direct messages").update(name_translations={"fr": "Messages privés"})
    french = get(client, f"/fr/incidents/{incident.public_id}")
    assert f"Panne de Messages privés à partir de {dm_start:%H:%M:%S} UTC (sa première exécution en échec)." in french
