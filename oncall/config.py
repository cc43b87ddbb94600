"""Configuration files: validate a YAML document and bring the database to it, idempotently.

Every problem says where it is — file, line, column and field — and what was expected
(`vigie.yaml:17:5: probes[2].interval: expected an integer, got text 'x'`); all of them are
collected before anything is written. Secrets (account tokens, Apprise URLs, webhook signing
secrets) are never written in the file, only referred to: `"${NAME}"` (an environment variable)
or `{file: PATH}` (a file's content, one trailing newline dropped). No message shows their value.
"""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from notifications.models import Channel, EventKind
from platforms.adapters import REGISTRY
from platforms.adapters.scripted import script_issues
from oncall.configreader import ConfigError, FieldPath, Problem, Reader, _hint, parse, quote
from probes.models import DEFAULT_SETTLE_S, Account, Action, Location, Platform, Probe, ProbeLocation, staggered_start
from detection.models import Component, ComponentGroup
from official.models import OfficialSource

__all__ = ["ConfigError", "Problem", "config_apply", "config_load", "config_read"]

SECTIONS = ("locations", "platforms", "probes", "components", "channels")
CHANNEL_EVENTS = tuple(kind for kind in EventKind.values if kind != EventKind.TEST)

# --- the document ------------------------------------------------------------------------------

LOCATION_KEYS = ("name", "label")
PLATFORM_KEYS = ("slug", "name", "kind", "base_url", "accounts", "settle", "write_limits", "official_status")
# `official_status:` of a platform: where it declares its own status (official.models.OfficialSource).
OFFICIAL_KEYS = ("kind", "url", "interval", "components", "unacknowledged_after")
OFFICIAL_KINDS = ("statuspage", "feed", "none")
# "300/3h": a limit per period.
WRITE_LIMIT_RE = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{1,6})\s*([smhd])\s*$")
PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ACCOUNT_KEYS = ("username", "token")
PROBE_KEYS = ("slug", "name", "platform", "action", "interval", "timeout", "latency_threshold_ms",
              "failure_threshold", "success_threshold", "quorum", "locations", "steps", "cleanup")
SCRIPTED_KIND = "http"  # platforms whose probes are scripts of HTTP steps (platforms.adapters.scripted)
# The languages a component's `names` may give: the page's, but English, which `name` already is.
TRANSLATED_LANGUAGES = tuple(code for code, _ in settings.LANGUAGES if code != settings.LANGUAGE_CODE.split("-")[0])
COMPONENT_KEYS = ("name", "names", "description", "group", "probes", "incident_on_degraded")
CHANNEL_KEYS = ("name", "kind", "url", "secret", "events")


def config_load(text: str, *, source: str = "config", base_dir: Path | None = None, shape_only: bool = False) -> dict:
    """Parse and validate; return the document with defaults filled in and secrets read, or raise
    ConfigError listing every problem. `source` names the file in messages; relative
    `{file: PATH}` references are read from `base_dir` (default: the current directory)."""
    root, marks = parse(text, source)
    reader = Reader(root, marks, source, base_dir or Path.cwd(), shape_only=shape_only)
    data = _document(reader, {} if root is None else root)
    problems = list(dict.fromkeys(reader.problems))  # an aliased mapping is read twice
    if problems:
        raise ConfigError(problems, reader.missing_env)
    return data


def config_read(path: Path | str, *, shape_only: bool = False) -> dict:
    """config_load of a file, named in messages as given, its {file: …} relative to its folder."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError([Problem(str(path), line, exc.start - (raw[:exc.start].rfind(b"\n") + 1) + 1, "",
                                   "not UTF-8 text")]) from None
    return config_load(text, source=str(path), base_dir=path.parent, shape_only=shape_only)


def _document(r: Reader, root: Any) -> dict:
    # Top-level keys starting with `x-` are the file's own, e.g. anchors for `<<: *probe-defaults`.
    if r.mapping(root, (), SECTIONS, noun="section", free="x-") is None:
        return {}
    names: dict[str, set[str]] = {"location": set(), "platform": set(), "probe": set(), "component": set(),
                                  "channel": set()}
    data: dict[str, Any] = {"locations": [], "platforms": [], "probes": [], "components": [],
                            # Absent: channels are not managed by this file (`notify add`, the admin).
                            "channels": None if root.get("channels") is None else []}
    for path, item in r.items(root, (), "locations", LOCATION_KEYS):
        data["locations"].append({"name": r.slug(item, path, "name", names["location"]),
                                  "label": r.text(item, path, "label", default="")})
    platform_paths = []
    for path, item in r.items(root, (), "platforms", PLATFORM_KEYS):
        platform_paths.append(path)
        data["platforms"].append(_platform(r, item, path, names["platform"]))
    for path, item in r.items(root, (), "probes", PROBE_KEYS):
        data["probes"].append(_probe(r, item, path, names))
    for path, item in r.items(root, (), "components", COMPONENT_KEYS):
        data["components"].append({
            "name": r.unique(r.text(item, path, "name"), (*path, "name"), names["component"]),
            # The name in the page's other languages (English is `name`).
            "names": r.translations(item, path, "names", TRANSLATED_LANGUAGES),
            "description": r.text(item, path, "description", default="", max_length=2000, multiline=True),
            "group": r.text(item, path, "group", default=""),
            "probes": r.references(item, path, "probes", names["probe"], "probe", default=[]),
            "incident_on_degraded": r.boolean(item, path, "incident_on_degraded", default=False),
        })
    for path, item in r.items(root, (), "channels", CHANNEL_KEYS):
        data["channels"].append(_channel(r, item, path, names["channel"]))
    for path, platform in zip(platform_paths, data["platforms"], strict=True):
        official = platform.get("official_status") or {}
        for official_name, name in official.get("components", {}).items():
            if name not in names["component"]:
                r.problem((*path, "official_status", "components", official_name),
                          f"no component {quote(name)} in this file{_hint(name, names['component'])}")
    kinds = {p["slug"]: p["kind"] for p in data["platforms"]}
    raw_probes = root.get("probes") if isinstance(root.get("probes"), list) else []
    for i, item in enumerate(raw_probes):
        path = ("probes", i)
        platform = item.get("platform") if isinstance(item, dict) else None
        kind = kinds.get(platform) if isinstance(platform, str) else None
        if kind is None:
            continue
        if kind == SCRIPTED_KIND and "steps" not in item:
            r.problem(path, f"a probe of a platform of kind {SCRIPTED_KIND} needs steps (see the scripted probes "
                            "in docs/configuration.md)")
        elif kind != SCRIPTED_KIND and ("steps" in item or "cleanup" in item):
            r.problem((*path, "steps" if "steps" in item else "cleanup"),
                      f"steps are for platforms of kind {SCRIPTED_KIND}; platform {item['platform']!r} is of "
                      f"kind {kind!r}, whose adapter performs the action itself")
    if not r.problems:
        for path, platform in zip(platform_paths, data["platforms"], strict=True):
            _budget(r, path, platform, data["probes"])
    return data


def _platform(r: Reader, item: dict, path: FieldPath, seen: set[str]) -> dict:
    platform = {"slug": r.slug(item, path, "slug", seen), "name": r.text(item, path, "name"),
                "kind": r.choice(item, path, "kind", sorted(REGISTRY)),
                "base_url": r.text(item, path, "base_url", max_length=300), "accounts": {},
                "settle": r.number(item, path, "settle", low=0, high=60, default=DEFAULT_SETTLE_S, integer=False,
                                   unit=" s"),
                "write_limits": None}
    if "write_limits" in item and platform["kind"] is not None:
        platform["write_limits"] = _write_limits(r, item["write_limits"], (*path, "write_limits"), platform["kind"])
    url = platform["base_url"]
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        r.problem((*path, "base_url"), f"{quote(item['base_url'])} is not an http(s) URL")
    platform["official_status"] = _official_status(r, item, path)
    accounts = item.get("accounts")
    roles = tuple(Account.Role.values)
    if accounts is None and platform["kind"] == SCRIPTED_KIND:
        pass  # a script may call an API without credentials
    elif accounts is None:
        r.problem((*path, "accounts"), "required (a mapping with a prober, and a partner for follow and dm)")
    elif r.mapping(accounts, (*path, "accounts"), roles, reveal=False) is not None:
        if "prober" not in accounts:
            r.problem((*path, "accounts", "prober"), "required (the account the probes act as)")
        for role in roles:
            where = (*path, "accounts", role)
            if role in accounts and r.mapping(accounts[role], where, ACCOUNT_KEYS, reveal=False) is not None:
                platform["accounts"][role] = {"username": r.text(accounts[role], where, "username"),
                                              "token": r.secret(accounts[role], where, "token", "token")}
    return platform


def _official_status(r: Reader, item: dict, path: FieldPath) -> dict | None:
    """`official_status:` — where the platform declares its own status: `kind: statuspage` (a page
    root, its /api/v2/*.json read), `feed` (an RSS or Atom URL) or `none`. None when absent or none."""
    value = item.get("official_status")
    where = (*path, "official_status")
    if value is None:
        return None
    if value == "none":
        return None
    if r.mapping(value, where, OFFICIAL_KEYS) is None:
        return None
    kind = r.choice(value, where, "kind", OFFICIAL_KINDS)
    if kind == "none":
        for key in ("url", "components"):
            if key in value:
                r.problem((*where, key), "an official source of kind none has no " + key)
        return None
    official = {
        "kind": kind,
        "url": r.text(value, where, "url", max_length=300),
        "interval": r.number(value, where, "interval", low=10, high=86_400, default=60, unit=" s"),
        "unacknowledged_after": r.number(value, where, "unacknowledged_after", low=60, high=7 * 86_400,
                                         default=900, unit=" s"),
        "components": {},
    }
    url = official["url"]
    if url is not None:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            parts, host = urlsplit(""), None
        if parts.scheme not in ("http", "https") or not host:
            r.problem((*where, "url"), f"{quote(url)} is not an http(s) URL")
        elif parts.username or parts.password:
            r.problem((*where, "url"), "an official status page is public: no user or password in its URL")
        elif kind == "statuspage" and "/api/v2" in parts.path:
            r.problem((*where, "url"), "give the page's root (https://status.example.com), not an /api/v2 URL: "
                                       "Vigie reads /api/v2/status.json, incidents/unresolved.json and "
                                       "components.json under it")
    mapping = value.get("components")
    if mapping is not None:
        cwhere = (*where, "components")
        if not isinstance(mapping, dict):
            r.problem(cwhere, "expected a mapping of official component name → Vigie component name, got "
                              f"{type(mapping).__name__ if not isinstance(mapping, list) else 'a list'}")
        else:
            for official_name in mapping:
                if not isinstance(official_name, str) or not official_name.strip():
                    r.problem((*cwhere, str(official_name)), "an official component name must be text", key=True)
                    continue
                name = r.text(mapping, cwhere, official_name, max_length=100)
                if name is not None:
                    official["components"][official_name] = name
    return official


def _probe(r: Reader, item: dict, path: FieldPath, names: dict[str, set[str]]) -> dict:
    # One line per key, and the key in PROBE_KEYS: that is all a new probe setting needs here.
    probe = {
        "slug": r.slug(item, path, "slug", names["probe"]),
        "name": r.text(item, path, "name"),
        "platform": r.reference(item, path, "platform", names["platform"], "platform"),
        "action": r.choice(item, path, "action", Action.values),
        "interval": r.number(item, path, "interval", low=5, high=86_400, default=60, unit=" s"),
        "timeout": r.number(item, path, "timeout", low=0.5, high=90, default=10, integer=False, unit=" s"),
        "latency_threshold_ms": r.number(item, path, "latency_threshold_ms", low=1, high=600_000, default=2000,
                                         unit=" ms"),
        "failure_threshold": r.number(item, path, "failure_threshold", low=1, high=100, default=2),
        "success_threshold": r.number(item, path, "success_threshold", low=1, high=100, default=2),
        "quorum": r.number(item, path, "quorum", low=1, high=100, default=None),
        "locations": r.references(item, path, "locations", names["location"], "location", at_least=1),
    }
    probe["script"] = {}
    if "steps" in item or "cleanup" in item:
        # In steps, ${…} are the script's variables (${token}, extracted values), not environment
        # variables: the script is kept as written and checked by the scripted adapter.
        script = {key: item[key] for key in ("steps", "cleanup") if key in item}
        issues = script_issues(script)
        for where, message in issues:
            r.problem((*path, *where), message)
        probe["script"] = {} if issues else script
    if probe["quorum"] and probe["locations"] and probe["quorum"] > len(probe["locations"]):
        r.problem((*path, "quorum"), f"{probe['quorum']} is more than the probe's {len(probe['locations'])} "
                                     "location(s)")
    return probe


def _channel(r: Reader, item: dict, path: FieldPath, seen: set[str]) -> dict:
    channel = {"name": r.unique(r.text(item, path, "name"), (*path, "name"), seen),
               "kind": r.choice(item, path, "kind", Channel.Kind.values), "url": None, "secret": None}
    if channel["kind"] == Channel.Kind.APPRISE:
        # An Apprise URL carries the service's credentials (slack://TokenA/TokenB/…).
        channel["url"] = url = r.secret(item, path, "url", "Apprise URL")
        if url is not None and not re.match(r"^[a-z][a-z0-9+.-]*://\S", url):
            r.problem((*path, "url"), "the Apprise URL read does not start with a scheme such as slack:// or tgram://")
        elif url is not None:
            from notifications.transports import apprise_scheme_problem

            problem = apprise_scheme_problem(url)
            if problem:
                r.problem((*path, "url"), problem)
        if "secret" in item:
            r.problem((*path, "secret"), "only webhooks are signed; an Apprise channel has no secret")
    elif channel["kind"] == Channel.Kind.WEBHOOK:
        channel["url"] = url = r.text(item, path, "url", max_length=2000)
        if url is not None:
            try:
                parts, host = urlsplit(url), urlsplit(url).hostname
            except ValueError:  # a malformed [IPv6] host
                parts, host = urlsplit(""), None
            if parts.scheme not in ("http", "https") or not host:
                r.problem((*path, "url"), "is not an http(s) URL")  # not shown: it may hold credentials
            elif parts.password and "${" not in item["url"]:
                r.problem((*path, "url"), "a password must not be written in the file: put the URL in an "
                                          "environment variable and write \"${NAME}\"")
        channel["secret"] = r.secret(item, path, "secret", "signing secret", min_length=16)
    channel["events"] = r.references(item, path, "events", set(CHANNEL_EVENTS), "event kind", default=[],
                                       declared=False)
    return channel


def _write_limits(r: Reader, value: Any, path: FieldPath, kind: str) -> dict | None:
    """`none` (a server without such limits) or {family: "limit/period"}, e.g. {statuses: 300/3h}."""
    from detection.budget import platform_limits

    families = [rule.family for rule in platform_limits(kind, None)]
    if value == "none" or value == {}:
        return {}
    if not isinstance(value, dict):
        r.problem(path, f"expected none or a mapping of {', '.join(families) or 'no families'} to limit/period "
                        f"(e.g. 300/3h), got {quote(value)}")
        return None
    declared = {}
    for family, text in value.items():
        match = WRITE_LIMIT_RE.match(str(text)) if isinstance(text, (str, int)) else None
        if family not in families:
            r.problem((*path, str(family)), f"unknown write-limit family {quote(family)} for kind {kind}; "
                                            f"known: {', '.join(families) or 'none'}")
        elif match is None:
            r.problem((*path, family), f"expected limit/period such as 300/3h, got {quote(text)}")
        else:
            declared[family] = [int(match.group(1)), int(match.group(2)) * PERIOD_UNITS[match.group(3)]]
    return declared


def _budget(r: Reader, path: FieldPath, platform: dict, probes: list[dict]) -> None:
    """A schedule that would exceed a platform's documented write limits is refused before it runs:
    the monitor would cause the very "over the limit" refusals it exists to detect."""
    from detection.budget import schedule_problems

    planned = [{"slug": p["slug"], "action": p["action"], "interval": p["interval"], "locations": p["locations"]}
               for p in probes if p["platform"] == platform["slug"]]
    for problem in schedule_problems(platform["kind"], planned, write_limits=platform.get("write_limits")):
        r.problem(path, f"platform {platform['slug']}: {problem}")


# --- applying ----------------------------------------------------------------------------------

_FIELD_NAMES = {"poll_interval_s": "interval", "unacknowledged_after_s": "unacknowledged_after",
                "component_map": "components", "interval_s": "interval", "timeout_s": "timeout", "event_kinds": "events", "settle_s": "settle",
                "name_translations": "names"}


def _shown(value: Any) -> str:
    if isinstance(value, models.Model) or value is None:
        return str(value) if value is not None else "none"
    return repr(value) if isinstance(value, str) else str(value)


def _upsert(changes: list[str], model: type[models.Model], lookup: dict, values: dict, label: str, *,
            secret: tuple[str, ...] = ()) -> tuple[Any, bool]:
    """Create, or update only the fields that differ (an encrypted field is compared decrypted, so
    an unchanged token is not written again)."""
    obj = model.objects.filter(**lookup).order_by("id").first()
    if obj is None:
        changes.append(f"+ {label}")
        return model.objects.create(**lookup, **values), True
    dirty = [k for k, v in values.items() if getattr(obj, k) != v]
    if dirty:
        said = [f"{_FIELD_NAMES.get(k, k)} changed" if k in secret else
                f"{_FIELD_NAMES.get(k, k)} {_shown(getattr(obj, k))} → {_shown(values[k])}" for k in dirty]
        for k in dirty:
            setattr(obj, k, values[k])
        obj.save(update_fields=dirty)
        changes.append(f"~ {label}: {', '.join(said)}")
    return obj, False


def config_apply(data: dict, *, dry_run: bool = False) -> list[str]:
    """Bring the database to a validated document; return what changed, one line each (empty when
    nothing did). With dry_run, say what would change and change nothing."""
    with transaction.atomic():
        changes = _apply(data)
        if dry_run:
            transaction.set_rollback(True)
    return changes


def _apply(data: dict) -> list[str]:
    changes: list[str] = []
    locations = {}
    for item in data.get("locations", []):
        locations[item["name"]], _ = _upsert(changes, Location, {"name": item["name"]}, {"label": item["label"]},
                                             f"location {item['name']}")
    platforms = {}
    for item in data.get("platforms", []):
        platform, _ = _upsert(changes, Platform, {"slug": item["slug"]},
                           {"name": item["name"], "kind": item["kind"], "base_url": item["base_url"],
                            "settle_s": float(item.get("settle", DEFAULT_SETTLE_S)), "write_limits": item.get("write_limits"),
                            "enabled": True}, f"platform {item['slug']}")
        platforms[item["slug"]] = platform
        for role, account in item["accounts"].items():
            _upsert(changes, Account, {"platform": platform, "role": role},
                    {"username": account["username"], "token": account["token"]},
                    f"account {role} of {item['slug']}", secret=("token",))
        _apply_official(platform, item.get("official_status"), changes)
    probes = {}
    for item in data.get("probes", []):
        probe, _ = _upsert(changes, Probe, {"slug": item["slug"]}, {
            "name": item["name"], "platform": platforms[item["platform"]], "action": item["action"],
            "interval_s": item["interval"], "timeout_s": float(item["timeout"]),
            "latency_threshold_ms": item["latency_threshold_ms"], "failure_threshold": item["failure_threshold"],
            "success_threshold": item["success_threshold"], "quorum": item["quorum"], "enabled": True,
            "script": item["script"],
        }, f"probe {item['slug']}")
        probes[item["slug"]] = probe
        wanted = {locations[name].id for name in item["locations"]}
        for placement in ProbeLocation.objects.filter(probe=probe).exclude(location_id__in=wanted):
            placement.delete()
            changes.append(f"- probe {item['slug']} at {placement.location.name}")
        for name in item["locations"]:
            _, made = ProbeLocation.objects.get_or_create(probe=probe, location=locations[name], defaults={
                "next_run_at": staggered_start(locations[name].id, probe.interval_s)})
            if made:
                changes.append(f"+ probe {item['slug']} at {name}")
    groups: dict[str, ComponentGroup] = {}
    for position, item in enumerate(data.get("components", [])):
        name = item["group"]
        if name and name not in groups:
            # A group sits where its first component is listed.
            groups[name], _ = _upsert(changes, ComponentGroup, {"name": name}, {"position": position},
                                      f"group {name}")
        component, created = _upsert(changes, Component, {"name": item["name"]}, {
            "position": position, "name_translations": item.get("names") or {},
            "description": item["description"], "group": groups.get(name),
            "incident_on_degraded": item["incident_on_degraded"]}, f"component {item['name']}")
        wanted = {probes[slug].id for slug in item["probes"]}
        if wanted != set(component.probes.values_list("id", flat=True)):
            component.probes.set(wanted)
            if not created:
                changes.append(f"~ component {item['name']}: probes {', '.join(item['probes']) or 'none'}")
    for group in ComponentGroup.objects.exclude(name__in=groups):
        if not group.components.exists():
            group.delete()
            changes.append(f"- group {group.name}")
    # A probe no longer in the file stops running but keeps its history.
    for probe in Probe.objects.filter(enabled=True).exclude(slug__in=probes).order_by("slug"):
        Probe.objects.filter(id=probe.id).update(enabled=False)
        changes.append(f"- probe {probe.slug} (disabled, history kept)")
    if data.get("channels") is not None:
        _apply_channels(data["channels"], changes)
    return changes


def _apply_official(platform: Platform, official: dict | None, changes: list[str]) -> None:
    """The platform's official source as the file says; none in the file: none in the database
    (its declared history goes with it, as the file is the truth about where to read)."""
    label = f"official status of {platform.slug}"
    if official is None:
        deleted, _ = OfficialSource.objects.filter(platform=platform).delete()
        if deleted:
            changes.append(f"- {label}")
        return
    source, created = _upsert(changes, OfficialSource, {"platform": platform}, {
        "kind": official["kind"], "url": official["url"], "poll_interval_s": official["interval"],
        "unacknowledged_after_s": official["unacknowledged_after"], "component_map": official["components"],
        "enabled": True}, label)
    if not created and source.next_poll_at > timezone.now() + timedelta(seconds=official["interval"]):
        # A shorter interval takes effect now, not after the old one.
        OfficialSource.objects.filter(id=source.id).update(next_poll_at=timezone.now())


def _apply_channels(items: list[dict], changes: list[str]) -> None:
    """The file's channels, and no other enabled one: a channel left out is disabled, its
    deliveries kept (and its pending ones cancelled when their turn comes)."""
    kept = []
    for item in items:
        values = {"kind": item["kind"], "url": item["url"], "event_kinds": item["events"], "enabled": True}
        if item["secret"] is not None:
            values["secret"] = item["secret"]
        channel, _ = _upsert(changes, Channel, {"name": item["name"]}, values, f"channel {item['name']}",
                             secret=("url", "secret"))
        kept.append(channel.id)
    for channel in Channel.objects.filter(enabled=True).exclude(id__in=kept).order_by("name", "id"):
        Channel.objects.filter(id=channel.id).update(enabled=False)
        changes.append(f"- channel {channel.name} (disabled, deliveries kept)")
