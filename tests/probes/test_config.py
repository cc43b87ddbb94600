"""Configuration files: every mistake reported with where it is; applying is idempotent."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from probes.config import ConfigError, config_apply, config_load
from probes.models import Account, Component, ComponentGroup, Probe, ProbeLocation

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


@pytest.fixture
def demo_env(monkeypatch):
    monkeypatch.setenv("SANDBOX_PORT", "8001")
    monkeypatch.setenv("SANDBOX_PROBER_TOKEN", "prober-secret-token-xyz")
    monkeypatch.setenv("SANDBOX_PARTNER_TOKEN", "partner-secret-token-xyz")


@pytest.mark.django_db
def test_applying_the_demo_twice_changes_nothing_the_second_time(demo_env):
    data = config_load(DEMO.read_text())
    assert config_apply(data)
    assert config_apply(config_load(DEMO.read_text())) == []
    assert Probe.objects.count() == 6
    assert ProbeLocation.objects.count() == 12
    assert list(Component.objects.values_list("name", flat=True)) == [
        "Posting", "Reposting", "Following", "Direct messages", "Timeline", "Post length limit"]


@pytest.mark.django_db
def test_components_join_the_group_named_in_the_file_and_leave_it(demo_env):
    config_apply(config_load(DEMO.read_text()))
    writes = ComponentGroup.objects.get()
    assert (writes.name, writes.position) == ("Writes", 0)
    assert list(writes.components.values_list("name", flat=True)) == [
        "Posting", "Reposting", "Following", "Direct messages"]
    assert Component.objects.get(name="Timeline").group is None
    ungrouped = DEMO.read_text().replace(", group: Writes", "")
    changes = config_apply(config_load(ungrouped))
    assert "~ component Posting: group" in changes and "- group Writes" in changes
    assert not ComponentGroup.objects.exists()


@pytest.mark.django_db
def test_a_group_that_is_not_a_name_is_reported_with_where_it_is(demo_env):
    bad = DEMO.read_text().replace("group: Writes, probes: [sandbox-dm]", "group: [Writes], probes: [sandbox-dm]")
    with pytest.raises(ConfigError, match=r"components\[3\]\.group"):
        config_load(bad)


@pytest.mark.django_db
def test_tokens_are_encrypted_at_rest(demo_env):
    config_apply(config_load(DEMO.read_text()))
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM probes_account")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored and all("secret-token" not in value for value in stored)
    assert Account.objects.get(role="prober").token == "prober-secret-token-xyz"


@pytest.mark.django_db
def test_removing_a_probe_from_the_file_disables_it_and_keeps_it(demo_env):
    config_apply(config_load(DEMO.read_text()))
    trimmed = DEMO.read_text().replace("  - {slug: sandbox-read,", "  # - {slug: sandbox-read,") \
        .replace("  - {name: Timeline, probes: [sandbox-read]}", "")
    changes = config_apply(config_load(trimmed))
    assert "- probe sandbox-read (disabled, history kept)" in changes
    assert Probe.objects.get(slug="sandbox-read").enabled is False


def test_every_problem_is_reported_at_once(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    text = """
locations: [{name: Bad Name}]
platforms:
  - {slug: p, name: P, kind: mastodn, base_url: "ftp://x", accounts: {prober: {username: u, token: "${NOT_SET_ANYWHERE}"}}}
probes:
  - {slug: a, name: A, platform: nowhere, action: tweet, interval: 1, timeout: 500, locations: [mars]}
components:
  - {name: C, probes: [ghost]}
extra: 1
"""
    text = text.replace("locations: [mars]}\n", "locations: [mars]}\n"
                        "  - {slug: a, name: Again, platform: p, action: post, intervall: 60}\n")
    with pytest.raises(ConfigError) as error:
        config_load(text)
    problems = "\n".join(error.value.problems)
    for expected in [
        "locations[0].name: 'Bad Name' is not a valid name",
        "platforms[0].kind: unknown kind 'mastodn'",
        "platforms[0].base_url: 'ftp://x' is not an http(s) URL",
        "environment variable NOT_SET_ANYWHERE is not set",
        "probes[0].platform: no platform 'nowhere'",
        "probes[0].action: 'tweet' is not one of",
        "probes[0].interval: 1 s is below the minimum of 5 s",
        "probes[0].timeout: 500 s is outside 0.5-90 s",
        "probes[0].locations[0]: no location 'mars'",
        "components[0].probes[0]: no probe 'ghost'",
        "extra: unknown section",
        "probes[1].slug: 'a' is declared twice",
        "probes[1].intervall: unknown key (did you mean 'interval'?)",
    ]:
        assert expected in problems


def test_the_command_exits_non_zero_and_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes: [{slug: a}]\n")
    with pytest.raises(CommandError, match="bad.yaml: .* problem"):
        call_command("config", "check", str(bad))


def test_a_schedule_over_mastodons_write_limits_is_refused_before_it_runs(monkeypatch):
    monkeypatch.setenv("T", "token-value")
    text = """
locations: [{name: a}, {name: b}]
platforms:
  - {slug: social, name: Social, kind: mastodon, base_url: "https://social.example",
     accounts: {prober: {username: vigie, token: "${T}"}, partner: {username: friend, token: "${T}"}}}
probes:
  - {slug: post, name: Post, platform: social, action: post, interval: 60, locations: [a, b]}
"""
    with pytest.raises(ConfigError) as error:
        config_load(text)
    # 2 locations × 180 runs per 3 h = 360 posts (Mastodon allows 300), and 60 deletes per 30 min (30).
    assert error.value.problems == [
        "platform social: the prober account would make 360 writes per 3 h counted as statuses, 80% or more of "
        "the platform's limit of 300: lengthen intervals or use fewer locations",
        "platform social: the prober account would make 60 writes per 30 min counted as deletes, 80% or more of "
        "the platform's limit of 30: lengthen intervals or use fewer locations"]
    assert config_load(text.replace("interval: 60", "interval: 300"))  # 12 deletes per 30 min: fine


def test_a_token_with_a_line_break_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("T", "secret-token-value\n")
    text = """
locations: [{name: a}]
platforms:
  - {slug: p, name: P, kind: mastodon, base_url: "https://social.example", accounts: {prober: {username: u, token: "${T}"}}}
"""
    with pytest.raises(ConfigError) as error:
        config_load(text)
    assert error.value.problems == ["platforms[0].accounts.prober.token: contains white space or control characters "
                                    "(a trailing newline from a file?)"]
    assert "secret-token-value" not in str(error.value)
