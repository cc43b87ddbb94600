"""Hypothesis on the configuration parser: whatever the file, either it loads, or a ConfigError whose
every problem names its line and field; a mistake put in a field is reported on that field; and any
valid configuration applies, then applies again without changing a row."""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings, strategies as st

from oncall.config import (ACCOUNT_KEYS, CHANNEL_KEYS, COMPONENT_KEYS, LOCATION_KEYS, PLATFORM_KEYS, PROBE_KEYS,
                           SECTIONS, ConfigError, config_apply, config_load)
from probes.models import Action, Probe, ProbeLocation
from detection.models import Component

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
ENV = {"SANDBOX_PORT": "8001", "SANDBOX_PROBER_TOKEN": "prober-fuzz-token-1", "SANDBOX_PARTNER_TOKEN":
       "partner-fuzz-token-2", "FUZZ_TOKEN": "fuzz-token-0123456789", "FUZZ_SLACK": "json://127.0.0.1:9/hook"}
# YAML's own line breaks: marks count every one of them.
LINE_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                # CI runs the same examples every time; VIGIE_FUZZ_RANDOM=1 explores new ones.
                derandomize=not os.environ.get("VIGIE_FUZZ_RANDOM"))


@pytest.fixture(autouse=True)
def env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def load(text: str) -> tuple[dict | None, ConfigError | None]:
    """config_load, checking that it fails only with problems that say where they are."""
    try:
        return config_load(text, source="f.yaml"), None
    except ConfigError as error:
        assert error.details and len(error.problems) == len(error.details)
        lines = len(LINE_BREAK.split(text))
        for problem in error.details:
            assert problem.source == "f.yaml"
            assert 1 <= problem.line <= lines and problem.column >= 1, problem
            assert problem.path or problem.message.startswith(("not valid YAML", "expected a mapping with")), problem
            assert str(problem).startswith(f"f.yaml:{problem.line}:{problem.column}: {problem.path}")
        return None, error


def dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=80)


# --- anything at all -------------------------------------------------------------------------------

TOKENS = ["locations", "platforms", "probes", "components", "channels", "name", "slug", "interval", "timeout",
          "accounts", "prober", "token", "kind", "url", "secret", "file", "events", "group", ":", ": ", "- ", "\n",
          "\n  ", "\n    - ", "[", "]", "{", "}", ",", "'", '"', "&a ", "*a", "<<: ", "!!int ", "!!timestamp ",
          "!!binary ", "!!set ", "!!omap ", "!custom ", "? ", "|\n  ", ">", "#", "%YAML 1.1\n", "---\n", "...",
          "${FUZZ_TOKEN}", "${UNSET_VAR}", "{file: /nonexistent}", "{file: /}", "~", "null", "yes", "1", "-7",
          "0x1F", "1e400", ".nan", "-.inf", "2024-13-45", "\\ud800", '"\\ud800"', '"\\0"', "\t", "\x00", "\x85",
          "\u2028", "\ufeff", "é", "🙂", "Ω" * 3, "x" * 300, "sandbox", "post", "http://h"]


@settings(max_examples=300, **SETTINGS)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join) | st.text(max_size=200))
def test_any_text_loads_or_fails_with_located_problems(text):
    load(text)


SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**20)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30) | st.sampled_from(
               ["${FUZZ_TOKEN}", "${UNSET_VAR}", "sandbox", "post", "sacramento", "x" * 5000, "Bad Name"]))
KEYS = st.sampled_from(sorted({*SECTIONS, *LOCATION_KEYS, *PLATFORM_KEYS, *ACCOUNT_KEYS, *PROBE_KEYS,
                               *COMPONENT_KEYS, *CHANNEL_KEYS, "prober", "partner", "file"})) | st.text(max_size=10)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                      max_leaves=25)


@settings(max_examples=200, **SETTINGS)
@given(st.dictionaries(st.sampled_from(SECTIONS) | st.text(max_size=8), VALUES, max_size=5) | VALUES)
def test_any_yaml_document_loads_or_fails_with_located_problems(document):
    load(dump(document))


# --- the demo, with one mistake --------------------------------------------------------------------

def demo() -> dict:
    data = yaml.safe_load(DEMO.read_text())
    data["channels"] = [{"name": "chat", "kind": "apprise", "url": "${FUZZ_SLACK}", "events": ["incident.opened"]},
                        {"name": "hook", "kind": "webhook", "url": "https://hooks.example.org/v",
                         "secret": "${FUZZ_TOKEN}"}]
    return data


TEXT_BAD = (st.integers() | st.floats() | st.booleans() | st.lists(st.integers(), min_size=1, max_size=2)
            | st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), min_size=1, max_size=1)
            | st.sampled_from(["x" * 301, "tab\there", "nul\x00", "", "   "]))
SLUG_BAD = TEXT_BAD | st.sampled_from(["Upper", "with space", "-dash-first", "x" * 65, "é"])


def int_bad(low: int, high: int):
    return (st.integers(max_value=low - 1) | st.integers(min_value=high + 1) | st.floats() | st.booleans()
            | st.text(max_size=5) | st.lists(st.integers(), min_size=1, max_size=2))


# Where a mistake can go in the demo, and mistakes for it: (section, key, values), on one item.
FIELDS = [
    ("locations", "name", SLUG_BAD),
    ("locations", "label", TEXT_BAD.filter(lambda v: v not in ("", "   "))),
    ("platforms", "slug", SLUG_BAD),
    ("platforms", "name", TEXT_BAD),
    ("platforms", "kind", TEXT_BAD | st.sampled_from(["mastodn", "Sandbox"])),
    ("platforms", "base_url", TEXT_BAD | st.sampled_from(["ftp://x", "127.0.0.1:8001", "http://"])),
    ("platforms", "accounts", TEXT_BAD | st.just({}) | st.just({"partner": {"username": "u", "token": "${FUZZ_TOKEN}"}})
     | st.just({"prober": "u"}) | st.just({"prober": {"username": "u", "token": "literal-token-value"}})
     | st.just({"prober": {"username": "u", "token": 12345}}) | st.just({"prober": {"username": "u", "token": {}}})
     | st.just({"prober": {"username": "u", "token": {"file": "/nonexistent/token"}}})),
    ("probes", "slug", SLUG_BAD),
    ("probes", "name", TEXT_BAD),
    ("probes", "platform", TEXT_BAD | st.just("nowhere")),
    ("probes", "action", TEXT_BAD | st.sampled_from(["tweet", "POST"])),
    ("probes", "interval", int_bad(5, 86_400)),
    ("probes", "timeout", st.floats(max_value=0.49) | st.floats(min_value=90.01) | st.just(float("nan"))
     | st.booleans() | st.text(max_size=5)),
    ("probes", "latency_threshold_ms", int_bad(1, 600_000)),
    ("probes", "failure_threshold", int_bad(1, 100)),
    ("probes", "quorum", int_bad(1, 2)),
    ("probes", "locations", TEXT_BAD | st.just([]) | st.just(["mars"]) | st.just(["atlanta", "atlanta"])
     | st.just([1])),
    ("components", "name", TEXT_BAD),
    ("components", "group", TEXT_BAD.filter(lambda v: v not in ("", "   "))),
    ("components", "probes", TEXT_BAD | st.just(["ghost"]) | st.just([None])),
    ("components", "incident_on_degraded", st.integers() | st.text(max_size=5)),
    ("channels", "name", TEXT_BAD),
    ("channels", "kind", TEXT_BAD | st.sampled_from(["slack", "Webhook"])),
    ("channels", "url", TEXT_BAD | st.sampled_from(["ftp://x", "http://[::1", "https://u:p@h/", "slack://a/b"])),
    ("channels", "secret", TEXT_BAD | st.sampled_from(["literal-secret-value", "${SANDBOX_PORT}", "${UNSET_VAR}"])),
    ("channels", "events", TEXT_BAD | st.just(["incident.open"]) | st.just(["test"]) | st.just([None])),
]


@st.composite
def one_mistake(draw):
    data = demo()
    kind = draw(st.sampled_from(["field", "missing", "unknown key", "twice", "section"]))
    if kind == "section":
        section = draw(st.sampled_from(SECTIONS))
        data[section] = draw(SCALARS.filter(lambda v: v is not None) | st.lists(SCALARS, min_size=1, max_size=3))
        return data, (section,), kind
    section, key, values = draw(st.sampled_from(FIELDS))
    index = draw(st.integers(0, len(data[section]) - 1))
    item = data[section][index]
    if kind == "field":
        item[key] = draw(values)
        return data, (section, index, key), kind
    if kind == "missing":
        required = {"locations": ["name"], "platforms": ["slug", "name", "kind", "base_url", "accounts"],
                    "probes": ["slug", "name", "platform", "action", "locations"], "components": ["name"],
                    "channels": ["name", "kind", "url"]}[section]
        key = draw(st.sampled_from(required))
        del item[key]
        return data, (section, index, key), kind
    if kind == "unknown key":
        known = {*LOCATION_KEYS, *PLATFORM_KEYS, *PROBE_KEYS, *COMPONENT_KEYS, *CHANNEL_KEYS}
        key = draw(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,11}\Z").filter(lambda k: k not in known))
        item[key] = draw(SCALARS)
        return data, (section, index, key), kind
    data[section].append(copy.deepcopy(item))
    name = "name" if section in ("locations", "components", "channels") else "slug"
    return data, (section, len(data[section]) - 1, name), kind


def path_text(path: tuple) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")


@settings(max_examples=250, **SETTINGS)
@given(one_mistake())
def test_a_mistake_in_the_demo_is_reported_on_its_field_and_line(case):
    data, path, kind = case
    text = dump(data)
    loaded, error = load(text)
    assert error is not None, f"{kind} at {path_text(path)} was accepted"
    where = path_text(path)
    named = [p for p in error.details if p.path == where or p.path.startswith((where + ".", where + "["))]
    assert named, f"no problem names {where}: {error.problems}"
    lines = LINE_BREAK.split(text)
    for problem in named:
        # The line shown holds the field's key, or its value just below (a block list or mapping).
        key = re.search(r"(?:^|\.)([A-Za-z_][A-Za-z0-9_-]*)\Z", problem.path)
        if key and not problem.message.startswith("required"):  # a missing key is shown at its mapping
            here = "\n".join(lines[max(0, problem.line - 3):problem.line])
            assert re.search(rf"(^|[\s{{,]){key.group(1)}:", here), (problem, here)
    for secret in (ENV["SANDBOX_PROBER_TOKEN"], ENV["SANDBOX_PARTNER_TOKEN"], ENV["FUZZ_TOKEN"], ENV["FUZZ_SLACK"],
                   "literal-token-value", "literal-secret-value", "u:p@"):
        assert secret not in str(error)


SECRET_LIKE = st.text(st.characters(blacklist_categories=("Cs",)), min_size=8, max_size=60).filter(
    lambda s: "${" not in s and s.strip() == s and not s.startswith(("*", "&", "!", "%", "@", "`")))


@settings(max_examples=60, **SETTINGS)
@given(st.sampled_from(["prober", "partner"]), SECRET_LIKE | st.integers(min_value=10**7).map(str))
def test_a_token_written_in_the_file_is_refused_on_its_field_and_never_shown(role, token):
    data = demo()
    data["platforms"][0]["accounts"][role]["token"] = token
    text = dump(data)
    _, error = load(text)
    assert error is not None
    where = f"platforms[0].accounts.{role}.token"
    assert [p.path for p in error.details] == [where]
    assert token not in str(error) and repr(token) not in str(error)
    lines = LINE_BREAK.split(text)
    assert lines[error.details[0].line - 1].lstrip().startswith("token:")
    assert lines[error.details[0].line - 3].strip() == f"{role}:"


# --- valid configurations --------------------------------------------------------------------------

SLUGS = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,20}\Z")
TEXTS = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(str.strip)


@st.composite
def valid_config(draw):
    locations = draw(st.lists(SLUGS, min_size=1, max_size=3, unique=True))
    platforms = draw(st.lists(SLUGS, min_size=1, max_size=2, unique=True))
    probe_slugs = draw(st.lists(SLUGS, min_size=0, max_size=5, unique=True))
    probes = []
    for slug in probe_slugs:
        where = draw(st.lists(st.sampled_from(locations), min_size=1, unique=True))
        probe = {"slug": slug, "name": draw(TEXTS), "platform": draw(st.sampled_from(platforms)),
                 "action": draw(st.sampled_from(Action.values)), "interval": draw(st.integers(5, 86_400)),
                 "timeout": draw(st.floats(0.5, 90) | st.integers(1, 90)), "locations": where}
        if draw(st.booleans()):
            probe["quorum"] = draw(st.integers(1, len(where)))
            probe["failure_threshold"] = draw(st.integers(1, 100))
        probes.append(probe)
    names = draw(st.lists(TEXTS, max_size=4, unique=True))
    components = [{"name": name, "group": draw(st.sampled_from(["", "Writes", "Reads ✓"])),
                   "probes": draw(st.lists(st.sampled_from(probe_slugs), unique=True) if probe_slugs else st.just([]))}
                  for name in names]
    document = {
        "locations": [{"name": name, "label": draw(TEXTS)} for name in locations],
        "platforms": [{"slug": slug, "name": draw(TEXTS), "kind": "sandbox", "base_url": "http://127.0.0.1:8001",
                       "accounts": {"prober": {"username": draw(TEXTS), "token": "${FUZZ_TOKEN}"}}}
                      for slug in platforms],
        "probes": probes, "components": components,
    }
    if draw(st.booleans()):
        document["channels"] = [{"name": draw(TEXTS), "kind": "apprise", "url": "${FUZZ_SLACK}",
                                 "events": draw(st.lists(st.sampled_from(["incident.opened", "problem.opened"]),
                                                         unique=True))}]
    return document


def rows() -> dict:
    with connection.cursor() as cursor:
        out = {}
        for table in ("probes_location", "probes_platform", "probes_account", "probes_probe", "probes_probelocation",
                      "probes_componentgroup", "probes_component", "probes_component_probes", "notifications_channel"):
            cursor.execute(f"SELECT * FROM {table} ORDER BY id")
            out[table] = cursor.fetchall()
    return out


@pytest.mark.django_db
@settings(max_examples=25, **SETTINGS)
@given(valid_config())
def test_a_valid_configuration_applies_then_applies_again_changing_nothing(document):
    data, error = load(dump(document))
    assert error is None, error.problems
    with transaction.atomic():
        assert config_apply(data)
        after = rows()
        assert config_apply(config_load(dump(document))) == []
        assert rows() == after
        assert set(Probe.objects.filter(enabled=True).values_list("slug", flat=True)) == {
            p["slug"] for p in document["probes"]}
        assert ProbeLocation.objects.count() == sum(len(p["locations"]) for p in document["probes"])
        assert list(Component.objects.values_list("name", flat=True)) == [c["name"] for c in document["components"]]
        transaction.set_rollback(True)


def test_the_mistake_strategy_really_starts_from_a_valid_demo():
    data, error = load(dump(demo()))
    assert error is None and len(data["probes"]) == 7 and len(data["channels"]) == 2
