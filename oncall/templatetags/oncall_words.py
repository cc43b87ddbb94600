"""On-call numbers as sentences a tired engineer reads at 3 a.m.: no "×1", no "0 failed runs in a row"."""
from __future__ import annotations

from django import template
from django.utils import timezone

from detection.incidents import CLASS_WORDS

register = template.Library()


def _places(n: int) -> str:
    return "1 probe location" if n == 1 else f"{n} probe locations"


@register.filter
def failure_causes(classes: dict | None) -> str:
    """An incident's evidence counts (failure class → failing probe locations), as one sentence:
    {"server_error": 1} → "Server errors at 1 probe location." """
    if not classes:
        return ""
    parts = [f"{CLASS_WORDS.get(name, name.replace('_', ' '))} at {_places(count)}"
             for name, count in sorted(classes.items(), key=lambda item: (-item[1], item[0]))]
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


@register.filter
def failure_streak(placement) -> str:
    """How a failing probe location got there, in words."""
    n = placement.consecutive_failures
    since = placement.streak_started_at
    when = f" since {timezone.localtime(since):%H:%M:%S}" if since else ""
    if n == 0:
        if placement.state == "failing":
            return ("Its last run succeeded, but one success is not a recovery yet: "
                    "it stays failing until enough runs in a row succeed.")
        return "Its last run succeeded."
    if n == 1:
        return f"Its last run failed{when}."
    return f"Its last {n} runs all failed{when}."


@register.filter
def failures_in_a_row(n: int) -> str:
    """The matrix cell's short form: "1 failure" / "3 failures in a row"; nothing for 0."""
    if not n:
        return ""
    return "last run failed" if n == 1 else f"last {n} runs failed"
