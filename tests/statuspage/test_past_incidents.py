"""The status page's past incidents, written in plain Python (statuspage/templatetags/status.py,
`past_incident_sections`): the same markup the template's loop wrote, in both languages, and
hostile titles and bodies stay text."""
from __future__ import annotations

from datetime import timedelta

import lxml.html
import pytest
from django.template import engines
from django.utils import timezone, translation

from detection.models import Incident, IncidentUpdate
from official import selectors as official
from statuspage import selectors
from tests.statuspage.official_rows import ack_make, incident_make, platform_make, source_make
from tests.statuspage.test_pages import get, site  # noqa: F401 (the fixture)

HOSTILE_TITLE = '<script>alert("title")</script><img src=x onerror=alert(1)> & \'q\''
HOSTILE_BODY = '<script>alert("body")</script> <img src=x onerror=alert(2)> [link](javascript:alert(3))'

# index.html's loop over the past incidents before it became a tag (reading the latest update where
# selectors.listed_incidents now puts it): the reference for its output.
TEMPLATE_LOOP = """{% load i18n status %}{% for incident in past_incidents %}
<section class="incident {{ incident.effective_impact }}">
  <h3><a href="{{ lang_prefix }}/incidents/{{ incident.public_id }}">{{ incident.shown_title }}</a></h3>
  <p class="muted"><time datetime="{{ incident.started_at|iso }}">{{ incident.started_at|date:"j M Y H:i T" }}</time> · {% translate "impact" %} {{ incident.effective_impact|impact_word }} · {{ incident.status|status_word }}</p>
  {% if incident.ack %}{% include "statuspage/_ack.html" with ack=incident.ack %}{% else %}
{% endif %}
  {% with latest=incident.latest_updates.0 %}{% if latest %}<div class="prose"{% if latest.shown_in_english %} lang="en"{% endif %}>{{ latest.shown_body|markdown:latest.automatic }}</div>{% endif %}{% endwith %}
</section>
{% endfor %}"""
TAG = "{% load status %}{% past_incident_sections past_incidents %}"


def listed(now):
    """The past incidents as the index view reads them (with their acknowledgements)."""
    past = selectors.listed_incidents(resolved_at__gte=now - timedelta(days=14))
    acks = official.acknowledgements(past)
    for incident in past:
        incident.ack = acks.get(incident.id)
    return past


def varied(now) -> None:
    """Past incidents of every shape the list shows: acknowledged or not, with an official link or
    not, without updates, automatic in English only or with French words, hostile, overridden impact."""
    platform = platform_make()
    source = source_make(platform)
    acked = incident_make(platform, started_at=now - timedelta(hours=30), resolved_at=now - timedelta(hours=29))
    ack_make(acked, source, at=now - timedelta(hours=29, minutes=50))
    incident_make(platform, started_at=now - timedelta(hours=28), resolved_at=now - timedelta(hours=27),
                  title="Never acknowledged")
    bare = Incident.objects.create(title="No updates", status="resolved", impact="minor", impact_override="critical",
                                   started_at=now - timedelta(hours=26), detected_at=now - timedelta(hours=26),
                                   resolved_at=now - timedelta(hours=25))
    assert not bare.updates.exists()
    automatic = Incident.objects.create(
        title="Posting failing", title_text={"key": "nonsense"}, automatic=True, status="resolved", impact="major",
        started_at=now - timedelta(hours=24), detected_at=now - timedelta(hours=24), resolved_at=now - timedelta(hours=23))
    IncidentUpdate.objects.create(
        incident=automatic, status="resolved", automatic=True, created_at=now - timedelta(hours=23),
        body="Runs succeed again from atlanta; watching for a steady recovery.",
        text={"key": "recovering", "params": {"locations": ["atlanta"]}})
    english_only = Incident.objects.create(
        title="Reposting failing", automatic=True, status="resolved", impact="major",
        started_at=now - timedelta(hours=22), detected_at=now - timedelta(hours=22), resolved_at=now - timedelta(hours=21))
    IncidentUpdate.objects.create(incident=english_only, status="resolved", automatic=True, body="Resolved.",
                                  created_at=now - timedelta(hours=21))
    hostile = Incident.objects.create(
        title=HOSTILE_TITLE, status="resolved", impact="critical", started_at=now - timedelta(hours=20),
        detected_at=now - timedelta(hours=20), resolved_at=now - timedelta(hours=19))
    IncidentUpdate.objects.create(incident=hostile, status="resolved", automatic=False, body=HOSTILE_BODY,
                                  created_at=now - timedelta(hours=19))
    IncidentUpdate.objects.create(incident=hostile, status="identified", automatic=True, body=HOSTILE_BODY,
                                  created_at=now - timedelta(hours=19, minutes=30))


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_sections_are_what_the_template_wrote(site, language):  # noqa: F811
    varied(site)
    past = listed(site)
    assert len(past) >= 6 and any(i.ack for i in past)
    engine = engines["django"]
    context = {"past_incidents": past, "lang_prefix": "/fr" if language == "fr" else "", "now": timezone.now()}
    with translation.override(language):
        expected = engine.from_string(TEMPLATE_LOOP).render(context)
        written = engine.from_string(TAG).render(context)
    assert written == expected
    assert expected.count('<p class="ack">') == 2  # the acknowledged and the never acknowledged


def test_a_hostile_title_and_body_in_the_past_incidents_stay_text(client, site):  # noqa: F811
    varied(site)
    for path in ("/", "/fr/"):
        html = get(client, path)
        assert "<script>" not in html
        assert "<img src=x" not in html
        page = lxml.html.fromstring(html)
        (section,) = [s for s in page.xpath("//section[contains(@class, 'incident')]")
                      if s.xpath("./h3/a")[0].text_content() == HOSTILE_TITLE]
        assert section.xpath(".//script") == [] and section.xpath(".//img") == []
        assert not [a for a in section.xpath(".//a") if "javascript:" in (a.get("href") or "")]
        assert "alert(\"body\")" in section.xpath(".//div[@class='prose']")[0].text_content()


def test_an_empty_list_says_so(client, site):  # noqa: F811
    assert "No incidents reported." in get(client, "/")
