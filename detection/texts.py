"""Automatic incident updates in the reader's language: a key and parameters stored with each update,
turned into words at display time through gettext.

detection.incidents writes each automatic update's English body once (the API, feeds and English page
show it as stored) and, beside it, `IncidentUpdate.text = {"key": …, "params": …}`. A page in another
language renders the key with `text_render`, so the French page reads French without the stored body
changing. The words live here, marked for translation with the context "automatic incident" so they
never share an entry with a page's own words.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from django.utils.translation import get_language, override, pgettext


class Text(TypedDict):
    key: str  # one of RENDERERS
    params: dict[str, Any]


# The context is written out at each call so that makemessages finds every entry.
def _class_words() -> dict[str, str]:
    return {
        "timeout": pgettext("automatic incident", "requests time out"),
        "connect": pgettext("automatic incident", "the platform cannot be reached"),
        "server_error": pgettext("automatic incident", "server errors"),
        "rate_limited": pgettext("automatic incident", "requests rate-limited"),
        "quota_exceeded": pgettext("automatic incident", "writes refused with a daily-limit error"),
        "read_only": pgettext("automatic incident", "writes refused, reads work"),
        "auth": pgettext("automatic incident", "the test account is refused"),
        "rejected": pgettext("automatic incident", "requests rejected"),
        "invariant": pgettext("automatic incident", "wrong results accepted"),
        "unexpected": pgettext("automatic incident", "unexpected responses"),
        "bad_response": pgettext("automatic incident", "malformed responses"),
        "not_delivered": pgettext("automatic incident", "new posts not reaching followers"),
    }


def _status_words() -> dict[str, str]:
    return {
        "operational": pgettext("automatic incident", "operational"),
        "degraded_performance": pgettext("automatic incident", "degraded performance"),
        "partial_outage": pgettext("automatic incident", "partial outage"),
        "major_outage": pgettext("automatic incident", "major outage"),
        "under_maintenance": pgettext("automatic incident", "under maintenance"),
        "unknown": pgettext("automatic incident", "unknown"),
    }


def component_names(components) -> list[dict]:
    """What a text needs of components: the name and its translations (from the config)."""
    return [{"name": c.name, "names": dict(c.name_translations or {})} for c in components]


def _name(entry: dict, language: str) -> str:
    return (entry.get("names") or {}).get(language) or entry["name"]


def _time(value: str) -> str:
    # As the English body writes it: in the time zone it was stored with (UTC).
    return f"{datetime.fromisoformat(value):%H:%M:%S %Z}"


def _evidence(params: dict) -> str:
    words = _class_words()
    parts = []
    if params.get("classes"):
        parts.append(", ".join(words.get(name, name.replace("_", " ")) for name in params["classes"]))
    if params.get("status_code"):
        parts.append(f"HTTP {params['status_code']}")
    if params.get("locations"):
        parts.append(pgettext("automatic incident", "from %(locations)s") % {"locations": ", ".join(params["locations"])})
    return "; ".join(parts)


def _opened(params: dict, language: str) -> str:
    return pgettext("automatic incident", "Vigie detected %(components)s not working: %(evidence)s. First failing run at %(time)s.") % {
        "components": ", ".join(_name(c, language) for c in params["components"]),
        "evidence": _evidence(params), "time": _time(params["started_at"])}


def _changed(params: dict, language: str) -> str:
    words = _status_words()
    return "; ".join(pgettext("automatic incident", "%(component)s: %(old)s → %(new)s") % {
        "component": _name(c, language), "old": words.get(c["old_status"], c["old_status"]),
        "new": words.get(c["new_status"], c["new_status"])} for c in params["changes"])


def _recovering(params: dict, language: str) -> str:
    return pgettext("automatic incident", "Runs succeed again from %(locations)s; watching for a steady recovery.") % {
        "locations": ", ".join(params["locations"])}


def _failing_again(params: dict, language: str) -> str:
    return pgettext("automatic incident", "Failing again from %(locations)s.") % {"locations": ", ".join(params["locations"])}


def _resolved(params: dict, language: str) -> str:
    return pgettext("automatic incident", "Resolved: every affected action works again. Outage lasted %(duration)s (± %(uncertainty)s).") % {
        "duration": params["duration"], "uncertainty": params["uncertainty"]}


def _postmortem(params: dict, language: str) -> str:
    return pgettext("automatic incident", "Postmortem published.")


RENDERERS = {"opened": _opened, "changed": _changed, "recovering": _recovering,
             "failing_again": _failing_again, "resolved": _resolved, "postmortem": _postmortem}


def text_english(text: Text) -> str:
    """The English body of a new automatic update (what is stored, and what the API shows)."""
    with override("en"):
        return RENDERERS[text["key"]](text.get("params") or {}, "en")


def text_render(text: dict | None, *, fallback: str, language: str | None = None) -> str:
    """The words of a stored text in `language` (the active one by default); `fallback` (the stored
    English body) in English, for an unknown key, or when the parameters do not fit (an old row)."""
    language = (language or get_language() or "en").split("-")[0]
    if language == "en" or not text or text.get("key") not in RENDERERS:
        return fallback
    try:
        with override(language):
            return RENDERERS[text["key"]](text.get("params") or {}, language)
    except (KeyError, TypeError, ValueError):
        return fallback


# --- titles ---------------------------------------------------------------------------------------

def _action_words() -> dict[str, str]:
    return {
        "post": pgettext("automatic incident", "posting"),
        "repost": pgettext("automatic incident", "reposting"),
        "follow": pgettext("automatic incident", "following"),
        "dm": pgettext("automatic incident", "direct messages"),
        "read": pgettext("automatic incident", "reading timelines"),
        "limits": pgettext("automatic incident", "limit checks"),
        "delivery": pgettext("automatic incident", "post delivery"),
    }


def _and(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return pgettext("automatic incident", "%(items)s and %(last)s") % {"items": ", ".join(words[:-1]),
                                                                       "last": words[-1]}


def _title_read_only(params: dict, language: str) -> str:
    words = _action_words()
    title = pgettext("automatic incident", "%(actions)s failing — platform read-only") % {
        "actions": _and([words.get(a, a) for a in params["actions"]]).capitalize()}
    if params.get("quota"):
        title = pgettext("automatic incident", "%(title)s: %(reason)s") % {
            "title": title, "reason": _class_words()["quota_exceeded"]}
    return title


def _title_limit(params: dict, language: str) -> str:
    return pgettext("automatic incident", "Character limit not enforced")


def _title_not_delivered(params: dict, language: str) -> str:
    return pgettext("automatic incident", "New posts not reaching followers")


def _title_failing(params: dict, language: str) -> str:
    names = [_name(c, language) for c in params["components"]]
    words = [names[0]] + [n[0].lower() + n[1:] for n in names[1:]] if names else [params["platform"]]
    if params.get("everything"):
        words = [pgettext("automatic incident", "Everything on %(platform)s") % {"platform": params["platform"]}]
    if params.get("degraded"):
        title = pgettext("automatic incident", "%(what)s degraded") % {"what": _and(words)}
    else:
        title = pgettext("automatic incident", "%(what)s failing") % {"what": _and(words)}
    if params.get("locations"):
        title += pgettext("automatic incident", " from %(locations)s") % {
            "locations": _and([n.capitalize() for n in params["locations"]])}
    if params.get("class"):
        title += f" — {_class_words().get(params['class'], params['class'])}"
    return title


TITLES = {"read_only": _title_read_only, "limit_not_enforced": _title_limit, "failing": _title_failing,
          "not_delivered": _title_not_delivered}


def title_render(text: dict, *, language: str) -> str:
    """An automatic incident's title in `language` ("en": the stored title)."""
    with override(language):
        return TITLES[text["key"]](text.get("params") or {}, language.split("-")[0])


def title_shown(title: str, text: dict | None, *, language: str | None = None) -> str:
    """The title a page shows: the stored one in English, for a person's title, or an old row."""
    language = (language or get_language() or "en").split("-")[0]
    if language == "en" or not text or text.get("key") not in TITLES:
        return title
    try:
        return title_render(text, language=language)
    except (KeyError, TypeError, ValueError, IndexError):
        return title
