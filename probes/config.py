"""Configuration files: validate a YAML document and bring the database to it, idempotently.

Every problem is reported with where it is (`probes[2].interval`) and what was expected; all of
them are collected before anything is written.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml
from django.db import transaction
from django.utils import timezone

from probes.adapters import REGISTRY
from probes.models import Account, Action, Component, ComponentGroup, Location, Platform, Probe, ProbeLocation

_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class _Checker:
    problems: list[str]

    def need(self, data: dict, key: str, where: str, kind: type | tuple[type, ...], *, default: Any = ...) -> Any:
        if key not in data:
            if default is ...:
                self.problems.append(f"{where}.{key}: required")
            return None if default is ... else default
        value = data[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            self.problems.append(f"{where}.{key}: expected a number, got {value!r}")
            return None
        if not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.problems.append(f"{where}.{key}: expected {expected}, got {type(value).__name__} {value!r}")
            return None
        return value

    def slug(self, value: Any, where: str) -> None:
        if isinstance(value, str) and not _SLUG.match(value):
            self.problems.append(f"{where}: {value!r} is not a valid name (1-64 of a-z, 0-9, '-', '_')")

    def keys(self, item: dict, where: str, allowed: set[str]) -> None:
        for key in sorted(set(item) - allowed):
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problems.append(f"{where}.{key}: unknown key{hint}; expected one of {', '.join(sorted(allowed))}")

    def unique(self, value: Any, where: str, seen: set) -> None:
        if isinstance(value, str):
            if value in seen:
                self.problems.append(f"{where}: {value!r} is declared twice")
            seen.add(value)


def _expand(value: Any, problems: list[str]) -> Any:
    """Replace ${NAME} in every string value by the environment variable NAME."""
    if isinstance(value, dict):
        return {k: _expand(v, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, problems) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            problems.append(f"environment variable {name} is not set (used as ${{{name}}})")
            return ""
        return os.environ[name]

    return _VAR.sub(replace, value)


def config_load(text: str) -> dict:
    """Parse and validate; raise ConfigError listing every problem."""
    problems: list[str] = []
    try:
        data = _expand(yaml.safe_load(text) or {}, problems)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(["the file must be a mapping with locations, platforms, probes, components"])
    check = _Checker(problems)
    unknown = set(data) - {"locations", "platforms", "probes", "components"}
    for key in sorted(unknown):
        problems.append(f"{key}: unknown section (expected locations, platforms, probes, components)")
    locations = check.need(data, "locations", "config", list, default=[]) or []
    platforms = check.need(data, "platforms", "config", list, default=[]) or []
    probes = check.need(data, "probes", "config", list, default=[]) or []
    components = check.need(data, "components", "config", list, default=[]) or []
    names = {"location": set(), "platform": set(), "probe": set()}

    for i, item in enumerate(locations):
        where = f"locations[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        check.keys(item, where, {"name", "label"})
        name = check.need(item, "name", where, str)
        check.slug(name, f"{where}.name")
        check.unique(name, f"{where}.name", names["location"])
    for i, item in enumerate(platforms):
        where = f"platforms[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        check.keys(item, where, {"slug", "name", "kind", "base_url", "accounts"})
        slug = check.need(item, "slug", where, str)
        check.slug(slug, f"{where}.slug")
        check.unique(slug, f"{where}.slug", names["platform"])
        check.need(item, "name", where, str)
        kind = check.need(item, "kind", where, str)
        if kind and kind not in REGISTRY:
            problems.append(f"{where}.kind: unknown kind {kind!r} (known: {', '.join(sorted(REGISTRY))})")
        url = check.need(item, "base_url", where, str)
        if url and not re.match(r"^https?://[^/\s]+", url):
            problems.append(f"{where}.base_url: {url!r} is not an http(s) URL")
        accounts = check.need(item, "accounts", where, dict) or {}
        if accounts and "prober" not in accounts:
            problems.append(f"{where}.accounts.prober: required")
        for role, account in accounts.items():
            if role not in ("prober", "partner"):
                problems.append(f"{where}.accounts.{role}: unknown role (expected prober or partner)")
            elif not isinstance(account, dict):
                problems.append(f"{where}.accounts.{role}: expected a mapping with username and token")
            else:
                check.keys(account, f"{where}.accounts.{role}", {"username", "token"})
                check.need(account, "username", f"{where}.accounts.{role}", str)
                token = check.need(account, "token", f"{where}.accounts.{role}", str)
                if token == "":
                    problems.append(f"{where}.accounts.{role}.token: empty")
                elif token and re.search(r"[\s\x00-\x1f\x7f]", token):
                    # Never echo the value: say what is wrong with it.
                    problems.append(f"{where}.accounts.{role}.token: contains white space or control characters "
                                    "(a trailing newline from a file?)")
    for i, item in enumerate(probes):
        where = f"probes[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        check.keys(item, where, {"slug", "name", "platform", "action", "interval", "timeout", "latency_threshold_ms",
                                 "locations"})
        slug = check.need(item, "slug", where, str)
        check.slug(slug, f"{where}.slug")
        check.unique(slug, f"{where}.slug", names["probe"])
        check.need(item, "name", where, str)
        platform = check.need(item, "platform", where, str)
        if platform and platform not in names["platform"]:
            problems.append(f"{where}.platform: no platform {platform!r} in this file")
        action = check.need(item, "action", where, str)
        if action and action not in Action.values:
            problems.append(f"{where}.action: {action!r} is not one of {', '.join(Action.values)}")
        interval = check.need(item, "interval", where, int, default=60)
        if isinstance(interval, int) and interval < 5:
            problems.append(f"{where}.interval: {interval} s is below the minimum of 5 s")
        timeout = check.need(item, "timeout", where, (int, float), default=10)
        if isinstance(timeout, (int, float)) and not 0.5 <= timeout <= 90:
            problems.append(f"{where}.timeout: {timeout} s is outside 0.5-90 s")
        threshold = check.need(item, "latency_threshold_ms", where, int, default=2000)
        if isinstance(threshold, int) and not 1 <= threshold <= 600_000:
            problems.append(f"{where}.latency_threshold_ms: {threshold} is outside 1-600000 ms")
        for j, loc in enumerate(check.need(item, "locations", where, list) or []):
            if loc not in names["location"]:
                problems.append(f"{where}.locations[{j}]: no location {loc!r} in this file")
    for i, item in enumerate(components):
        where = f"components[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        check.keys(item, where, {"name", "description", "probes", "group"})
        check.need(item, "group", where, str, default="")
        check.unique(check.need(item, "name", where, str), f"{where}.name", names.setdefault("component", set()))
        for j, probe in enumerate(check.need(item, "probes", where, list, default=[]) or []):
            if probe not in names["probe"]:
                problems.append(f"{where}.probes[{j}]: no probe {probe!r} in this file")
    if not problems:
        problems += _budget_problems(platforms, probes)
    if problems:
        raise ConfigError(problems)
    return data


def _budget_problems(platforms: list[dict], probes: list[dict]) -> list[str]:
    """A schedule that would exceed a platform's documented write limits is refused before it runs:
    the monitor would cause the very "over the limit" refusals it exists to detect."""
    from probes.budget import schedule_problems

    problems = []
    for platform in platforms:
        planned = [{"slug": p["slug"], "action": p["action"], "interval": p.get("interval", 60),
                    "locations": p.get("locations", [])} for p in probes if p.get("platform") == platform["slug"]]
        for problem in schedule_problems(platform["kind"], planned):
            problems.append(f"platform {platform['slug']}: {problem}")
    return problems


@transaction.atomic
def config_apply(data: dict) -> list[str]:
    """Bring the database to a validated document; returns what changed (empty when nothing did)."""
    changes: list[str] = []

    def upsert(model, lookup: dict, values: dict, label: str):
        obj = model.objects.filter(**lookup).first()
        if obj is None:
            obj = model.objects.create(**lookup, **values)
            changes.append(f"+ {label}")
            return obj
        dirty = [k for k, v in values.items() if getattr(obj, k) != v]
        if dirty:
            for k in dirty:
                setattr(obj, k, values[k])
            obj.save(update_fields=dirty)
            changes.append(f"~ {label}: {', '.join(dirty)}")
        return obj

    locations = {}
    for item in data.get("locations", []):
        locations[item["name"]] = upsert(Location, {"name": item["name"]}, {"label": item.get("label", "")},
                                         f"location {item['name']}")
    platforms = {}
    for item in data.get("platforms", []):
        platform = upsert(Platform, {"slug": item["slug"]},
                          {"name": item["name"], "kind": item["kind"], "base_url": item["base_url"], "enabled": True},
                          f"platform {item['slug']}")
        platforms[item["slug"]] = platform
        for role, account in item.get("accounts", {}).items():
            upsert(Account, {"platform": platform, "role": role},
                   {"username": account["username"], "token": account["token"]}, f"account {role} of {item['slug']}")
    probes = {}
    for item in data.get("probes", []):
        probe = upsert(Probe, {"slug": item["slug"]}, {
            "name": item["name"], "platform": platforms[item["platform"]], "action": item["action"],
            "interval_s": item.get("interval", 60), "timeout_s": float(item.get("timeout", 10)),
            "latency_threshold_ms": item.get("latency_threshold_ms", 2000), "enabled": True,
        }, f"probe {item['slug']}")
        probes[item["slug"]] = probe
        wanted = {locations[name].id for name in item.get("locations", [])}
        for placement in ProbeLocation.objects.filter(probe=probe).exclude(location_id__in=wanted):
            placement.delete()
            changes.append(f"- probe {item['slug']} at {placement.location.name}")
        for location_id in wanted:
            _, made = ProbeLocation.objects.get_or_create(probe=probe, location_id=location_id,
                                                          defaults={"next_run_at": timezone.now()})
            if made:
                changes.append(f"+ probe {item['slug']} at {Location.objects.get(id=location_id).name}")
    groups: dict[str, ComponentGroup] = {}
    for position, item in enumerate(data.get("components", [])):
        name = item.get("group") or ""
        if name and name not in groups:
            # A group sits where its first component is listed.
            groups[name] = upsert(ComponentGroup, {"name": name}, {"position": position}, f"group {name}")
        component = upsert(Component, {"name": item["name"]}, {"position": position,
                                                               "description": item.get("description", ""),
                                                               "group": groups.get(name)},
                           f"component {item['name']}")
        wanted = {probes[slug].id for slug in item.get("probes", [])}
        current = set(component.probes.values_list("id", flat=True))
        if wanted != current:
            component.probes.set(wanted)
            changes.append(f"~ component {item['name']}: probes")
    for group in ComponentGroup.objects.exclude(name__in=groups):
        if not group.components.exists():
            group.delete()
            changes.append(f"- group {group.name}")
    # A probe no longer in the file stops running but keeps its history.
    for probe in Probe.objects.filter(enabled=True).exclude(slug__in=probes):
        Probe.objects.filter(id=probe.id).update(enabled=False)
        changes.append(f"- probe {probe.slug} (disabled, history kept)")
    return changes
