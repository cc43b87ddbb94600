"""Configuration files: every mistake reported with its line and field; secrets only by reference;
applying is idempotent and prints what it changes."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from notifications.models import Channel, Delivery, Event
from platforms.adapters import REGISTRY
from oncall.config import ConfigError, config_apply, config_load, config_read
from probes.models import Account, Location, Probe, ProbeLocation, Run
from detection.models import Component, ComponentGroup

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.yaml"
PRODUCTION = ROOT / "examples" / "production.yaml"


@pytest.fixture
def demo_env(monkeypatch):
    monkeypatch.setenv("SANDBOX_PORT", "8001")
    monkeypatch.setenv("SANDBOX_PROBER_TOKEN", "prober-secret-token-xyz")
    monkeypatch.setenv("SANDBOX_PARTNER_TOKEN", "partner-secret-token-xyz")


def problems_of(text: str, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as error:
        config_load(text, source="v.yaml", **kwargs)
    return error.value.problems


def raw(table: str, column: str) -> list[str]:
    """What the database really holds (encrypted columns as stored)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def snapshot() -> dict:
    """Every row `config apply` manages, as stored."""
    tables = {"probes_location": "*", "probes_platform": "*", "probes_account": "*", "probes_probe": "*",
              "probes_probelocation": "*", "probes_componentgroup": "*", "probes_component": "*",
              "probes_component_probes": "*", "notifications_channel": "*"}
    out = {}
    with connection.cursor() as cursor:
        for table, columns in tables.items():
            cursor.execute(f"SELECT {columns} FROM {table} ORDER BY id")
            out[table] = cursor.fetchall()
    return out


def apply(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("config", "apply", str(path), *args, stdout=out)
    return out.getvalue()


# --- the demo, applied ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_applying_the_demo_twice_changes_nothing_the_second_time(demo_env):
    data = config_load(DEMO.read_text())
    assert config_apply(data)
    assert config_apply(config_load(DEMO.read_text())) == []
    assert Probe.objects.count() == 7
    assert ProbeLocation.objects.count() == 14
    assert list(Component.objects.values_list("name", flat=True)) == [
        "Posting", "Reposting", "Following", "Direct messages", "Timeline", "Post length limit", "Post delivery"]


@pytest.mark.django_db
def test_the_command_prints_the_diff_then_says_no_changes_and_rewrites_nothing_the_second_time(demo_env):
    first = apply(DEMO)
    assert first.splitlines()[0] == "+ location sacramento"
    assert "+ account prober of sandbox" in first
    assert "+ probe sandbox-post at atlanta" in first
    assert re.search(r"demo\.yaml: applied \d+ change\(s\)\n\Z", first)
    before = snapshot()
    assert before["probes_account"] and before["probes_probe"]
    assert apply(DEMO) == f"{DEMO}: no changes\n"
    # Unchanged tokens are not encrypted again (Fernet would give new ciphertext).
    assert snapshot() == before


@pytest.mark.django_db
def test_a_dry_run_prints_what_would_change_and_changes_nothing(demo_env, tmp_path):
    apply(DEMO)
    before = snapshot()
    slower = tmp_path / "demo.yaml"
    slower.write_text(DEMO.read_text().replace("interval: 60", "interval: 120"))
    out = apply(slower, "--dry-run")
    assert out == ("~ probe sandbox-limits: interval 60 → 120\n"
                   f"{slower}: 1 change(s) to apply (dry run: nothing changed)\n")
    assert snapshot() == before
    assert apply(slower).startswith("~ probe sandbox-limits: interval 60 → 120\n")
    assert Probe.objects.get(slug="sandbox-limits").interval_s == 120


@pytest.mark.django_db
def test_a_changed_token_is_said_to_change_without_being_shown(demo_env, monkeypatch):
    apply(DEMO)
    monkeypatch.setenv("SANDBOX_PROBER_TOKEN", "another-secret-token-abc")
    out = apply(DEMO)
    assert out.splitlines()[0] == "~ account prober of sandbox: token changed"
    assert "secret-token" not in out
    assert Account.objects.get(role="prober").token == "another-secret-token-abc"


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
    assert "~ component Posting: group Writes → none" in changes and "- group Writes" in changes
    assert not ComponentGroup.objects.exists()


@pytest.mark.django_db
def test_component_names_translated_in_the_file_are_stored_and_changed_by_applying(demo_env):
    config_apply(config_load(DEMO.read_text()))
    posting = Component.objects.get(name="Posting")
    assert posting.name_translations == {"fr": "Publication"} and posting.name_in("fr") == "Publication"
    assert posting.name_in("en") == "Posting"
    untranslated = DEMO.read_text().replace(", names: {fr: Publication}", "")
    changes = config_apply(config_load(untranslated))
    assert changes == ["~ component Posting: names {'fr': 'Publication'} → {}"]
    posting.refresh_from_db()
    assert posting.name_translations == {} and posting.name_in("fr") == "Posting"


@pytest.mark.parametrize("names, problem", [
    ("{de: Veröffentlichung}", "v.yaml:2:29: components[0].names.de: unknown language; expected one of fr"),
    ("{en: Posts}", "v.yaml:2:29: components[0].names.en: unknown language; expected one of fr"),
    ("{fr: [Publication]}", "v.yaml:2:33: components[0].names.fr: expected text, got a list"),
    ("{fr: ''}", "v.yaml:2:33: components[0].names.fr: is empty"),
    ("Publication", "v.yaml:2:28: components[0].names: expected a mapping with fr, got text 'Publication'"),
])
def test_a_bad_translated_name_is_reported_with_its_line(names, problem):
    problems = problems_of(f"components:\n  - {{name: Posting, names: {names}}}\n")
    assert problem in problems, problems


@pytest.mark.django_db
def test_tokens_are_encrypted_at_rest(demo_env):
    config_apply(config_load(DEMO.read_text()))
    stored = raw("probes_account", "token")
    assert stored and all("secret-token" not in value for value in stored)
    assert Account.objects.get(role="prober").token == "prober-secret-token-xyz"


@pytest.mark.django_db
def test_removing_a_probe_from_the_file_disables_it_and_keeps_its_history(demo_env):
    config_apply(config_load(DEMO.read_text()))
    probe = Probe.objects.get(slug="sandbox-read")
    now = timezone.now()
    Run.objects.create(probe=probe, location=Location.objects.get(name="atlanta"), scheduled_for=now,
                       started_at=now, finished_at=now, latency_ms=10, outcome="success")
    trimmed = DEMO.read_text().replace("  - {slug: sandbox-read,", "  # - {slug: sandbox-read,") \
        .replace("  - {name: Timeline, probes: [sandbox-read], names: {fr: Fil d’actualité}}", "")
    changes = config_apply(config_load(trimmed))
    assert "- probe sandbox-read (disabled, history kept)" in changes
    probe.refresh_from_db()
    assert probe.enabled is False
    assert probe.runs.count() == 1 and probe.placements.count() == 2
    assert config_apply(config_load(trimmed)) == []
    # Back in the file: running again.
    assert "~ probe sandbox-read: enabled False → True" in config_apply(config_load(DEMO.read_text()))


@pytest.mark.django_db
def test_probe_thresholds_and_quorum_come_from_the_file(demo_env):
    extra = "failure_threshold: 3, success_threshold: 1, quorum: 2,"
    text = DEMO.read_text().replace("action: post, interval: 30,", f"action: post, {extra} interval: 30,")
    config_apply(config_load(text))
    probe = Probe.objects.get(slug="sandbox-post")
    assert (probe.failure_threshold, probe.success_threshold, probe.quorum) == (3, 1, 2)
    assert problems_of(text.replace("quorum: 2", "quorum: 3")) == [
        "v.yaml:21:123: probes[0].quorum: 3 is more than the probe's 2 location(s)"]


# --- where problems are ----------------------------------------------------------------------------

def test_every_problem_is_reported_at_once_with_its_line(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    text = """\
locations: [{name: Bad Name}]
platforms:
  - {slug: p, name: P, kind: mastodn, base_url: "ftp://x", accounts: {prober: {username: u, token: "${NOT_SET_ANYWHERE}"}}}
probes:
  - {slug: a, name: A, platform: nowhere, action: tweet, interval: 1, timeout: 500, locations: [mars]}
  - {slug: a, name: Again, platform: p, action: post, intervall: 60, locations: []}
  - slug: b
    name: B
    platform: p
    action: post
    interval: "30"
    locations: [Bad Name]
components:
  - {name: C, probes: [ghost]}
extra: 1
"""
    assert problems_of(text) == [
        "v.yaml:15:1: extra: unknown section; expected one of locations, platforms, probes, components, channels",
        "v.yaml:1:20: locations[0].name: 'Bad Name' is not a valid name (1-64 of a-z, 0-9, '-', '_', starting with "
        "a letter or digit)",
        f"v.yaml:3:30: platforms[0].kind: 'mastodn' is not one of {', '.join(sorted(REGISTRY))} (did you mean "
        "'mastodon'?)",
        "v.yaml:3:49: platforms[0].base_url: 'ftp://x' is not an http(s) URL",
        "v.yaml:3:100: platforms[0].accounts.prober.token: environment variable NOT_SET_ANYWHERE is not set "
        "(used as ${NOT_SET_ANYWHERE})",
        "v.yaml:5:34: probes[0].platform: no platform 'nowhere' in this file",
        "v.yaml:5:51: probes[0].action: 'tweet' is not one of post, repost, follow, dm, read, limits, delivery",
        "v.yaml:5:68: probes[0].interval: 1 s is outside 5-86400 s",
        "v.yaml:5:80: probes[0].timeout: 500 s is outside 0.5-90 s",
        "v.yaml:5:97: probes[0].locations[0]: no location 'mars' in this file",
        "v.yaml:6:55: probes[1].intervall: unknown key (did you mean 'interval'?); expected one of slug, name, "
        "platform, action, interval, timeout, latency_threshold_ms, failure_threshold, success_threshold, quorum, "
        "locations, steps, cleanup",
        "v.yaml:6:12: probes[1].slug: 'a' is declared twice",
        "v.yaml:6:81: probes[1].locations: needs at least 1 location",
        "v.yaml:11:15: probes[2].interval: expected an integer, got text '30'",
        "v.yaml:12:17: probes[2].locations[0]: no location 'Bad Name' in this file",
        "v.yaml:14:24: components[0].probes[0]: no probe 'ghost' in this file",
    ]


def test_a_missing_key_is_reported_where_its_mapping_starts():
    text = "locations: [{name: a}]\nprobes:\n  - slug: a\n    name: A\n    platform: p\n"
    problems = problems_of(text)
    assert "v.yaml:3:5: probes[0].action: required (one of post, repost, follow, dm, read, limits, delivery)" in problems
    assert "v.yaml:5:15: probes[0].platform: no platform 'p' in this file" in problems


def test_shared_settings_can_be_anchored_under_an_x_key_and_merged_in(demo_env):
    text = """\
x-probe: &probe {platform: sandbox, interval: 30, locations: [a]}
locations: [{name: a}]
platforms:
  - {slug: sandbox, name: S, kind: sandbox, base_url: "http://127.0.0.1:1", accounts: {prober: {username: u, token: "${SANDBOX_PROBER_TOKEN}"}}}
probes:
  - {<<: *probe, slug: post, name: Post, action: post}
  - {<<: *probe, slug: read, name: Read, action: read, interval: 60}
"""
    data = config_load(text)
    assert [(p["slug"], p["interval"], p["locations"]) for p in data["probes"]] == [
        ("post", 30, ["a"]), ("read", 60, ["a"])]
    # A mistake in the shared settings is shown where it is written, named by the probe that takes it.
    assert problems_of(text.replace("interval: 30", "interval: soon")) == [
        "v.yaml:1:47: probes[0].interval: expected an integer, got text 'soon'"]


def test_a_key_written_twice_is_reported_at_its_second_line():
    text = "locations:\n  - name: a\n    label: A\n    name: b\n"
    assert problems_of(text) == ["v.yaml:4:5: locations[0].name: written twice in this mapping (only the last "
                                 "one would count)"]


def test_a_yaml_syntax_error_is_reported_with_its_line():
    assert problems_of("locations:\n  - {name: a\nprobes: []\n") == [
        "v.yaml:3:7: not valid YAML: while parsing a flow mapping; expected ',' or '}', but got ':'"]


def test_a_file_that_is_not_a_mapping_is_refused():
    assert problems_of("- locations\n") == [
        "v.yaml:1:1: expected a mapping with locations, platforms, probes, components, channels, got a list"]


def test_a_group_that_is_not_a_name_is_reported_with_where_it_is(demo_env):
    bad = DEMO.read_text().replace("group: Writes, probes: [sandbox-dm]", "group: [Writes], probes: [sandbox-dm]")
    assert problems_of(bad) == ["v.yaml:35:36: components[3].group: expected text, got a list"]


def test_the_command_prints_each_problem_with_the_file_and_line_and_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes:\n  - {slug: a}\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"bad\.yaml: 4 problem\(s\), nothing applied"):
        call_command("config", "check", str(bad), stderr=err)
    assert f"{bad}:2:5: probes[0].name: required (text)\n" in err.getvalue()


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
    # 2 locations × 180 runs per 3 h = 360 posts (Mastodon allows 300), and 60 deletes per 30 min (30).
    assert problems_of(text) == [
        "v.yaml:4:5: platforms[0]: platform social: the prober account would make 360 writes per 3 h counted as "
        "statuses, 80% or more of the platform's limit of 300: lengthen intervals or use fewer locations",
        "v.yaml:4:5: platforms[0]: platform social: the prober account would make 60 writes per 30 min counted as "
        "deletes, 80% or more of the platform's limit of 30: lengthen intervals or use fewer locations"]
    assert config_load(text.replace("interval: 60", "interval: 300"))  # 12 deletes per 30 min: fine


SELF_HOSTED = """
locations: [{name: a}, {name: b}]
platforms:
  - {slug: social, name: Social, kind: mastodon, base_url: "https://social.example", LIMITS
     accounts: {prober: {username: vigie, token: "${T}"}, partner: {username: friend, token: "${T}"}}}
probes:
  - {slug: post, name: Post, platform: social, action: post, interval: 60, locations: [a, b]}
"""


def test_a_self_hosted_platform_may_declare_its_own_write_limits_or_none(monkeypatch, tmp_path, db):
    """Issue 16: mastodon.social's limits were applied to every kind: mastodon server."""
    monkeypatch.setenv("T", "token-value")
    assert config_load(SELF_HOSTED.replace("LIMITS", "write_limits: none,"))["platforms"][0]["write_limits"] == {}
    declared = config_load(SELF_HOSTED.replace("LIMITS", "write_limits: {statuses: 1000/1h},"))
    assert declared["platforms"][0]["write_limits"] == {"statuses": [1000, 3600]}  # deletes: not limited
    tight = problems_of(SELF_HOSTED.replace("LIMITS", "write_limits: {statuses: 100/1h},"))
    assert len(tight) == 1 and "limit of 100" in tight[0]
    assert problems_of(SELF_HOSTED.replace("LIMITS", "write_limits: {posts: 1/1h},")) == [
        "v.yaml:4:108: platforms[0].write_limits.posts: unknown write-limit family 'posts' for kind mastodon; "
        "known: statuses, deletes, follows"]
    # config check says which limits it applied and why.
    path = tmp_path / "c.yaml"
    path.write_text(SELF_HOSTED.replace("LIMITS", "write_limits: none,"))
    out = io.StringIO()
    call_command("config", "check", str(path), stdout=out)
    assert "platform social: no write limits (declared by the platform)" in out.getvalue()
    path.write_text(SELF_HOSTED.replace("LIMITS", "").replace("interval: 60", "interval: 600"))
    out = io.StringIO()
    call_command("config", "check", str(path), stdout=out)
    assert "statuses 300 per 3 h, deletes 30 per 30 min, follows 400 per 24 h (documented for kind mastodon)" \
        in out.getvalue()


# --- secrets -------------------------------------------------------------------------------------

ONE_PLATFORM = """\
locations: [{name: a}]
platforms:
  - slug: p
    name: P
    kind: mastodon
    base_url: https://social.example
    accounts:
      prober: {username: u, token: TOKEN}
"""


def test_a_token_written_in_the_file_is_refused_naming_its_line_without_echoing_it():
    problems = problems_of(ONE_PLATFORM.replace("TOKEN", "hunter2-literal-token"))
    assert problems == ['v.yaml:8:36: platforms[0].accounts.prober.token: the token must not be written in the '
                        'file: put it in an environment variable and write "${NAME}", or in a file and write '
                        '{file: PATH}']
    assert "hunter2" not in "\n".join(problems)
    # Half a reference is still a literal secret.
    assert "hunter2" not in "\n".join(problems_of(ONE_PLATFORM.replace("TOKEN", '"hunter2${T}"')))
    # A number is not a reference either, and is not shown.
    assert problems_of(ONE_PLATFORM.replace("TOKEN", "987654321")) == [
        'v.yaml:8:36: platforms[0].accounts.prober.token: expected "${NAME}" (an environment variable) or '
        '{file: PATH}, got an integer']


def test_a_token_with_a_line_break_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("T", "secret-token-value\n")
    problems = problems_of(ONE_PLATFORM.replace("TOKEN", '"${T}"'))
    assert problems == ["v.yaml:8:36: platforms[0].accounts.prober.token: the value of ${T} contains white space "
                        "or control characters (only one trailing newline of a file is dropped)"]
    assert "secret-token-value" not in "\n".join(problems)


def test_a_token_file_is_read_relative_to_the_config_and_loses_one_trailing_newline(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "prober").write_text("file-token-123\n")
    config = tmp_path / "vigie.yaml"
    config.write_text(ONE_PLATFORM.replace("TOKEN", "{file: secrets/prober}"))
    assert config_read(config)["platforms"][0]["accounts"]["prober"]["token"] == "file-token-123"
    # An environment variable may name the folder (systemd's $CREDENTIALS_DIRECTORY).
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "secrets"))
    (tmp_path / "secrets" / "prober").write_text("crlf-token-456\r\n")
    text = ONE_PLATFORM.replace("TOKEN", '{file: "${CREDENTIALS_DIRECTORY}/prober"}')
    assert config_load(text)["platforms"][0]["accounts"]["prober"]["token"] == "crlf-token-456"


@pytest.mark.parametrize("content, expected", [
    (None, "{path}: no such file"),
    ("dir", "{path}: not a regular file"),
    ("", "the value of file {path} is empty"),
    ("\n", "the value of file {path} is empty"),
    ("two-newlines-secret\n\n", "the value of file {path} contains white space or control characters (only one "
                                "trailing newline of a file is dropped)"),
    (b"\xff\xfe-not-utf8", "{path}: not UTF-8 text"),
    ("x" * (64 * 1024 + 1), "{path}: larger than 64 KiB, not a secret"),
])
def test_a_token_file_that_cannot_be_used_is_reported_clearly(tmp_path, content, expected):
    path = tmp_path / "token"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    problems = problems_of(ONE_PLATFORM.replace("TOKEN", f"{{file: {path}}}"))
    assert problems == [f"v.yaml:8:43: platforms[0].accounts.prober.token.file: {expected.format(path=path)}"]
    assert "two-newlines-secret" not in problems[0]


# --- notification channels -------------------------------------------------------------------------

CHANNELS = """\
channels:
  - name: on-call-slack
    kind: apprise
    url: "${SLACK_URL}"
    events: [incident.opened, incident.resolved]
  - name: pager
    kind: webhook
    url: https://hooks.example.org/vigie
    secret: {file: webhook-secret}
"""


@pytest.fixture
def channels_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_URL", "slack://TokenA/TokenB/TokenC/#ops")
    (tmp_path / "webhook-secret").write_text("whsec-0123456789abcdef\n")
    path = tmp_path / "vigie.yaml"
    path.write_text(CHANNELS)
    return path


@pytest.mark.django_db
def test_channels_are_created_from_the_file_and_applied_again_change_nothing(channels_file):
    out = apply(channels_file)
    assert out == f"+ channel on-call-slack\n+ channel pager\n{channels_file}: applied 2 change(s)\n"
    slack, pager = Channel.objects.order_by("name")
    assert (slack.kind, slack.url, slack.event_kinds) == ("apprise", "slack://TokenA/TokenB/TokenC/#ops",
                                                          ["incident.opened", "incident.resolved"])
    assert (pager.kind, pager.url, pager.secret, pager.event_kinds) == (
        "webhook", "https://hooks.example.org/vigie", "whsec-0123456789abcdef", [])
    assert not any("TokenA" in value or "whsec" in value for value in raw("notifications_channel", "url")
                   + raw("notifications_channel", "secret"))
    before = snapshot()
    assert apply(channels_file) == f"{channels_file}: no changes\n"
    assert snapshot() == before


@pytest.mark.django_db
def test_a_channel_left_out_of_the_file_is_disabled_and_keeps_its_deliveries(channels_file, monkeypatch):
    manual = Channel.objects.create(name="added-by-notify", kind="webhook", url="https://elsewhere.example/")
    assert "- channel added-by-notify (disabled, deliveries kept)\n" in apply(channels_file)
    manual.refresh_from_db()
    assert manual.enabled is False
    pager = Channel.objects.get(name="pager")
    delivery = Delivery.objects.create(event=Event.objects.create(key="k", kind="test"), channel=pager)
    channels_file.write_text(CHANNELS.split("  - name: pager")[0])
    out = apply(channels_file)
    assert out == f"- channel pager (disabled, deliveries kept)\n{channels_file}: applied 1 change(s)\n"
    pager.refresh_from_db()
    assert pager.enabled is False
    assert Delivery.objects.filter(id=delivery.id, channel=pager).exists()
    monkeypatch.setenv("SLACK_URL", "slack://TokenX/TokenY/TokenZ/#ops")
    assert apply(channels_file).splitlines()[0] == "~ channel on-call-slack: url changed"


@pytest.mark.django_db
def test_a_file_without_a_channels_section_leaves_channels_alone(demo_env):
    manual = Channel.objects.create(name="added-by-notify", kind="webhook", url="https://elsewhere.example/")
    apply(DEMO)
    manual.refresh_from_db()
    assert manual.enabled is True


def test_channel_mistakes_are_reported_with_their_lines(monkeypatch):
    monkeypatch.setenv("SHORT", "short")
    text = """\
channels:
  - {name: chat, kind: apprise, url: "slack://TokenA/TokenB/TokenC", secret: "${SHORT}"}
  - {name: hook, kind: webhook, url: "https://user:pw@hooks.example.org/", secret: "${SHORT}", events: [incident.open]}
  - {name: hook, kind: telegram}
"""
    assert problems_of(text) == [
        'v.yaml:2:38: channels[0].url: the Apprise URL must not be written in the file: put it in an environment '
        'variable and write "${NAME}", or in a file and write {file: PATH}',
        "v.yaml:2:78: channels[0].secret: only webhooks are signed; an Apprise channel has no secret",
        'v.yaml:3:38: channels[1].url: a password must not be written in the file: put the URL in an environment '
        'variable and write "${NAME}"',
        "v.yaml:3:84: channels[1].secret: the value of ${SHORT} is shorter than 16 characters",
        "v.yaml:3:105: channels[1].events[0]: 'incident.open' is not one of incident.acknowledged, incident.opened, "
        "incident.resolved, incident.unacknowledged, incident.updated, maintenance.ended, maintenance.started, "
        "problem.opened, problem.resolved (did you mean 'incident.opened'?)",
        "v.yaml:4:12: channels[2].name: 'hook' is declared twice",
        "v.yaml:4:24: channels[2].kind: 'telegram' is not one of apprise, webhook",
    ]


def test_the_production_example_checks_with_its_secrets_given(tmp_path, monkeypatch):
    for name in ("prober", "partner", "webhook-secret"):
        (tmp_path / name).write_text(f"{name}-0123456789abcdef\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("VIGIE_SLACK_URL", "slack://TokenA/TokenB/TokenC/#ops")
    data = config_read(PRODUCTION)
    assert data["platforms"][0]["accounts"]["prober"]["token"] == "prober-0123456789abcdef"
    assert [c["name"] for c in data["channels"]] == ["on-call-slack", "pager"]


PRODUCTION = Path(__file__).resolve().parents[2] / "examples" / "production.yaml"


def test_checking_the_production_example_without_its_environment_names_every_missing_variable_once(monkeypatch):
    for name in ("CREDENTIALS_DIRECTORY", "VIGIE_SLACK_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CommandError) as error:
        call_command("config", "check", str(PRODUCTION), stderr=io.StringIO())
    message = str(error.value)
    assert "environment variables that are not set here: CREDENTIALS_DIRECTORY, VIGIE_SLACK_URL." in message
    assert "--no-env" in message


def test_no_env_checks_the_shape_of_the_production_example(monkeypatch):
    for name in ("CREDENTIALS_DIRECTORY", "VIGIE_SLACK_URL"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    call_command("config", "check", "--no-env", str(PRODUCTION), stdout=out)
    assert "OK in shape" in out.getvalue()


def test_no_env_still_finds_a_shape_problem(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text(PRODUCTION.read_text().replace("components:", "componnents:", 1))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("config", "check", "--no-env", str(bad), stderr=err)
    assert "componnents" in err.getvalue()


def test_no_env_is_refused_for_apply(db):
    with pytest.raises(CommandError, match="--no-env only goes with check"):
        call_command("config", "apply", "--no-env", str(PRODUCTION), stdout=io.StringIO())
