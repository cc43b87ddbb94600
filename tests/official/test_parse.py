"""Reading real Statuspage v2 documents and real RSS/Atom status feeds; hostile ones are Unreadable."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from official.parse import (
    MAX_TEXT, Unreadable, link, parse_components, parse_feed, parse_incidents, parse_status, parse_statuspage, plain,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
NOW = datetime(2025, 10, 4, 1, 10, tzinfo=timezone.utc)


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_a_real_statuspage_is_read_whole():
    declared = parse_statuspage(load("discord-status.json"), load("discord-unresolved.json"),
                                load("discord-components.json"))
    assert (declared.indicator, declared.description) == ("minor", "Partially Degraded Service")
    # The group (Voice) is left out: its children carry the statuses.
    assert [(c.name, c.status) for c in declared.components] == [("API", "degraded_performance"),
                                                                  ("US East", "under_maintenance")]
    [incident] = declared.incidents
    assert (incident.external_id, incident.name, incident.status, incident.impact) == (
        "n4njzfn1mqy0", "Messaging issues", "monitoring", "minor")
    assert incident.url == "https://stspg.io/y1w39cblgvhz"
    assert incident.components == ["API"]
    assert incident.started_at == datetime(2022, 2, 15, 21, 14, 17, 737000, tzinfo=timezone.utc)
    assert incident.updated_at == datetime(2022, 2, 15, 21, 21, 55, 183000, tzinfo=timezone.utc)
    assert incident.last_update_text == "We believe we have mitigated the root cause & are monitoring."
    assert not incident.resolved and declared.complete


def test_a_real_atom_history_feed_is_read_as_incidents():
    declared = parse_feed((FIXTURES / "github-history.atom").read_bytes(), now=NOW)
    assert declared.indicator == "minor" and not declared.complete
    open_one, resolved = declared.incidents
    assert open_one.external_id == "tag:www.githubstatus.com,2005:Incident/26640000"
    assert open_one.url == "https://www.githubstatus.com/incidents/k3l9mm2ppq1x"
    assert (open_one.status, open_one.started_at) == ("investigating", datetime(2025, 10, 4, 0, 58, 10, tzinfo=timezone.utc))
    assert open_one.last_update_text.startswith("Oct 4, 01:07 UTC Update - We are investigating")
    assert (resolved.name, resolved.status) == ("Incident with Copilot", "resolved")
    assert resolved.resolved_at == datetime(2025, 10, 3, 3, 47, 28, tzinfo=timezone.utc)


def test_a_real_rss_history_feed_is_read_and_its_javascript_link_dropped():
    declared = parse_feed((FIXTURES / "github-history.rss").read_bytes(), now=datetime(2021, 12, 10, 18, 30,
                                                                                        tzinfo=timezone.utc))
    first, second = declared.incidents
    assert first.external_id == first.url == "https://www.githubstatus.com/incidents/xfyz6y1rqbyl"
    assert first.status == "investigating"
    assert (second.external_id, second.url, second.status) == ("tag:webhooks-1", "", "resolved")


def test_old_feed_entries_that_never_said_resolved_are_over():
    declared = parse_feed((FIXTURES / "github-history.atom").read_bytes(), now=datetime(2025, 11, 1, tzinfo=timezone.utc))
    assert declared.indicator == "none" and all(i.resolved for i in declared.incidents)


@pytest.mark.parametrize("document, reason", [
    ([], "status.json is not a JSON object"),
    ({"status": "major"}, "status.json's status is not a JSON object"),
    ({"status": {"indicator": "red"}}, "status.json's indicator is 'red', not one of none, minor, major, critical, maintenance"),
    ({"status": {}}, "status.json's indicator is missing, not one of none, minor, major, critical, maintenance"),
])
def test_a_wrong_status_document_is_unreadable_with_its_reason(document, reason):
    with pytest.raises(Unreadable) as error:
        parse_status(document)
    assert error.value.reason == reason


def test_wrong_lists_are_unreadable_and_odd_items_skipped():
    with pytest.raises(Unreadable, match="components.json's components is not a list"):
        parse_components({"components": {"a": 1}})
    with pytest.raises(Unreadable, match="more than 500 is not a status page"):
        parse_incidents({"incidents": [{}] * 501})
    odd = parse_incidents({"incidents": [1, None, {"id": ["x"], "name": "n"}, {"id": "a", "name": "<b></b>"},
                                         {"id": "ok", "name": "Fine", "status": "exploded", "shortlink": "javascript:x",
                                          "started_at": "yesterday", "components": "API"}]})
    assert [(i.external_id, i.status, i.url, i.started_at, i.components) for i in odd] == [("ok", "", "", None, [])]


@pytest.mark.parametrize("body, reason", [
    (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
     "the answer is an HTML page, not an RSS or Atom feed"),
    (b'{"not": "a feed"}', "the answer is not an RSS or Atom feed"),
    (b"\x00\x01\x02", "the answer is not an RSS or Atom feed"),
    (b"/etc/passwd", "the answer is not an RSS or Atom feed"),
])
def test_what_is_not_a_feed_is_unreadable(body, reason):
    with pytest.raises(Unreadable) as error:
        parse_feed(body, now=NOW)
    assert error.value.reason == reason


def test_texts_become_bounded_plain_text():
    assert plain("<p>Writes <script>steal()</script>failing</p>\x00\x1b  again &amp; again") == \
        "Writes failing again & again"
    assert len(plain("x " * 10_000)) == MAX_TEXT
    assert plain(["not", "text"]) == ""


@pytest.mark.parametrize("value, kept", [
    ("https://status.example/incidents/1", True), ("http://status.example", True), ("javascript:alert(1)", False),
    ("data:text/html,x", False), ("/incidents/1", False), ("https://user:pw@status.example", False),
    ("https://status.example/\n", False), ("https://[::1", False), (42, False),
])
def test_only_http_links_are_kept(value, kept):
    assert (link(value) == value) is kept


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=30)
incident_like = st.fixed_dictionaries({}, optional={
    "id": json_values, "name": json_values, "status": st.sampled_from(["investigating", "resolved"]) | json_values,
    "impact": json_values, "shortlink": st.text(max_size=80) | json_values, "started_at": st.text(max_size=40),
    "incident_updates": st.lists(st.dictionaries(st.sampled_from(["body", "created_at", "display_at"]), json_values),
                                 max_size=3) | json_values,
    "components": st.lists(st.dictionaries(st.just("name"), json_values), max_size=3) | json_values})


@settings(max_examples=150, deadline=None)
@given(status=json_values | st.fixed_dictionaries({"status": st.dictionaries(
           st.sampled_from(["indicator", "description"]), json_values)}),
       incidents=st.fixed_dictionaries({"incidents": st.lists(incident_like, max_size=5)}) | json_values,
       components=st.fixed_dictionaries({"components": st.lists(st.dictionaries(
           st.sampled_from(["name", "status", "group", "updated_at"]), json_values), max_size=5)}) | json_values)
def test_any_json_is_read_or_unreadable_never_a_crash(status, incidents, components):
    try:
        declared = parse_statuspage(status, incidents, components)
    except Unreadable as exc:
        assert exc.reason and len(exc.reason) <= 300
        return
    for incident in declared.incidents:
        assert incident.name and len(incident.name) <= 200 and incident.external_id
        assert incident.url == "" or incident.url.startswith(("http://", "https://"))
        assert all(ord(ch) >= 32 for ch in incident.name + incident.last_update_text)


@settings(max_examples=100, deadline=None)
@given(title=st.text(max_size=300), summary=st.text(max_size=300), href=st.text(max_size=60))
def test_any_feed_entry_text_is_stored_as_plain_text(title, summary, href):
    from xml.sax.saxutils import escape, quoteattr

    body = (f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>e1</id>'
            f'<title>{escape(title)}</title><link href={quoteattr(href)}/><summary type="html">{escape(summary)}'
            f'</summary><updated>2025-10-04T00:00:00Z</updated></entry></feed>').encode("utf-8", "surrogatepass")
    try:
        declared = parse_feed(body, now=NOW)
    except Unreadable:
        return
    for incident in declared.incidents:
        assert len(incident.name) <= 200 and len(incident.last_update_text) <= MAX_TEXT
        assert all(ord(ch) >= 32 for ch in incident.name + incident.last_update_text)
        assert incident.url == "" or incident.url.split(":", 1)[0] in ("http", "https")
