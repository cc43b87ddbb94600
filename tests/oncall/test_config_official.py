"""`official_status:` in the configuration: checked with the line and key of each mistake, and
applied as the platform's OfficialSource (created, updated, deleted with the file)."""
from __future__ import annotations

import pytest

from oncall.config import ConfigError, config_apply, config_load
from official.models import OfficialSource

BASE = """\
locations: [{name: here}]
platforms:
  - slug: social
    name: Social
    kind: mastodon
    base_url: https://social.example
    accounts: {prober: {username: vigie, token: "${PROBER}"}}
%s
probes:
  - {slug: social-post, name: Post, platform: social, action: post, interval: 600, locations: [here]}
components:
  - {name: Posting, probes: [social-post]}
"""


@pytest.fixture(autouse=True)
def prober_env(monkeypatch):
    monkeypatch.setenv("PROBER", "prober-secret-token-xyz")


def document(official: str) -> str:
    return BASE % "\n".join("    " + line for line in official.splitlines())


def problems_of(official: str) -> list[str]:
    with pytest.raises(ConfigError) as error:
        config_load(document(official), source="v.yaml")
    return error.value.problems


def test_a_statuspage_source_is_read_with_its_defaults():
    data = config_load(document("official_status: {kind: statuspage, url: https://status.social.example}"))
    assert data["platforms"][0]["official_status"] == {
        "kind": "statuspage", "url": "https://status.social.example", "interval": 60,
        "unacknowledged_after": 900, "components": {}}


def test_none_or_no_key_means_no_official_source():
    assert config_load(document("official_status: {kind: none}"))["platforms"][0]["official_status"] is None
    assert config_load(document("official_status: none"))["platforms"][0]["official_status"] is None
    assert config_load(document(""))["platforms"][0]["official_status"] is None


def test_each_mistake_names_its_line_and_key():
    problems = problems_of("official_status:\n  kind: statuspag\n  url: javascript:alert(1)\n  interval: 5\n"
                           "  colour: red")
    assert "v.yaml:9:13: platforms[0].official_status.kind: 'statuspag' is not one of statuspage, feed, none " \
           "(did you mean 'statuspage'?)" in problems
    assert any(p.startswith("v.yaml:10:") and "official_status.url: 'javascript:alert(1)' is not an http(s) URL" in p
               for p in problems)
    assert any(p.startswith("v.yaml:11:") and "interval: 5 s is outside 10-86400 s" in p for p in problems)
    assert any(p.startswith("v.yaml:12:") and "unknown key" in p for p in problems)


def test_an_api_url_instead_of_the_page_root_is_explained():
    problems = problems_of("official_status: {kind: statuspage, url: https://s.example/api/v2/status.json}")
    assert len(problems) == 1 and "give the page's root" in problems[0]


def test_a_mapping_to_an_unknown_component_is_refused_with_a_hint():
    problems = problems_of("official_status:\n  kind: feed\n  url: https://s.example/history.atom\n"
                           "  components: {API: Postng}")
    assert len(problems) == 1
    assert problems[0].startswith("v.yaml:11:")
    assert "official_status.components.API: no component 'Postng' in this file (did you mean 'Posting'?)" in problems[0]


@pytest.mark.django_db
def test_apply_creates_updates_and_deletes_the_source():
    first = document("official_status:\n  kind: statuspage\n  url: https://status.social.example\n"
                     "  components: {Publishing: Posting}\n  unacknowledged_after: 600")
    changes = config_apply(config_load(first))
    assert "+ official status of social" in changes
    source = OfficialSource.objects.get()
    assert (source.kind, source.url, source.poll_interval_s, source.unacknowledged_after_s, source.component_map) == (
        "statuspage", "https://status.social.example", 60, 600, {"Publishing": "Posting"})
    assert config_apply(config_load(first)) == []

    second = document("official_status: {kind: feed, url: https://status.social.example/history.atom, interval: 120}")
    changes = config_apply(config_load(second))
    assert any(c.startswith("~ official status of social: kind 'statuspage' → 'feed'") for c in changes)
    assert OfficialSource.objects.get().poll_interval_s == 120

    assert config_apply(config_load(document(""))) == ["- official status of social"]
    assert not OfficialSource.objects.exists()
