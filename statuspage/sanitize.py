"""The one sanitizer every text passes before it reaches a page, a feed, an email or the static copy.

Texts come from people (incident updates, postmortems, maintenances) and from platforms (their error
texts are quoted into automatic updates), so none of them is trusted:

- characters XML 1.0 forbids (C0 controls but tab, newline and carriage return; surrogates; U+FFFE
  and U+FFFF) are removed, so a feed is always well-formed XML (`clean_text`);
- Markdown is rendered by markdown-it-py (CommonMark, linear in the input) with a nesting limit,
  raw HTML off, and nh3 keeps only MARKDOWN_TAGS; a text nested deeper than the limit, or one whose
  rendering fails for any reason, is shown as escaped plain text — that text only, never a 500;
- incoming texts are bounded in length (`check_length`, used by the API serializers and the forms).
"""
from __future__ import annotations

import logging
import re

import nh3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.html import linebreaks
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

log = logging.getLogger(__name__)

# XML 1.0 § 2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# What a person's Markdown may become. Raw HTML is never parsed (it shows as typed, escaped), and nh3
# removes whatever Markdown itself could produce beyond this (images, a javascript: link).
MARKDOWN_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "a", "blockquote"}
MARKDOWN_URL_SCHEMES = {"http", "https", "mailto"}
# Block and inline nesting (lists in lists, quotes in quotes, emphasis in links…): deeper than this,
# the text is shown as plain text. CommonMark's own recommendation for markdown-it is 20 as well.
MAX_NESTING = 20


def clean_text(text) -> str:
    """`text` without the characters XML 1.0 forbids (None → "")."""
    if text is None:
        return ""
    return XML_FORBIDDEN.sub("", str(text))


def _parser() -> MarkdownIt:
    # "breaks": a single newline is a <br>, as operators type updates (Python-Markdown's nl2br before).
    return MarkdownIt("commonmark", {"html": False, "breaks": True, "xhtmlOut": False,
                                     "maxNesting": MAX_NESTING}).disable("image")


_MD = _parser()


class TooDeep(ValueError):
    pass


def _render(text: str) -> str:
    tokens = _MD.parse(text)
    # markdown-it stops descending at maxNesting and drops what lies deeper: such a text is shown
    # whole as plain text rather than cut.
    for token in tokens:
        if token.level >= MAX_NESTING - 1 or any(child.level >= MAX_NESTING - 1 for child in token.children or ()):
            raise TooDeep(f"nested deeper than {MAX_NESTING}")
    return _MD.renderer.render(tokens, _MD.options, {})


def plain_html(text: str) -> SafeString:
    """`text` escaped, paragraphs and line breaks kept: how a text that is not Markdown is shown."""
    return mark_safe(linebreaks(clean_text(text), autoescape=True))


def markdown_html(text, *, plain: bool = False) -> SafeString:
    """Text written by people (incident updates, postmortems, maintenances) as safe HTML blocks.
    `plain` is for Vigie's own automatic updates: they may quote a platform's error text, which is
    shown as written, never read as Markdown (a hostile platform does not get to make links).
    Never raises: a text that cannot be rendered is shown as escaped plain text."""
    text = clean_text(text)
    if not text:
        return mark_safe("")
    if plain:
        return plain_html(text)
    try:
        html = _render(text)
        return mark_safe(nh3.clean(html, tags=MARKDOWN_TAGS, attributes={"*": set(), "a": {"href"}},
                                   url_schemes=MARKDOWN_URL_SCHEMES, link_rel="nofollow noopener"))
    except TooDeep:
        return plain_html(text)
    except Exception:  # noqa: BLE001 — one bad text must not take the page down
        log.warning("a text could not be rendered as Markdown; shown as plain text", exc_info=True)
        return plain_html(text)


def max_chars(kind: str) -> int:
    """The length limit of an incoming text: "body" (incident update, maintenance body) or "postmortem"."""
    return {"body": settings.VIGIE_MAX_BODY_CHARS, "postmortem": settings.VIGIE_MAX_POSTMORTEM_CHARS}[kind]


def check_length(text, kind: str = "body") -> str:
    """`text` cleaned, or a ValidationError with a clear message if it is longer than its limit."""
    text = clean_text(text)
    limit = max_chars(kind)
    if len(text) > limit:
        raise ValidationError(
            f"This text is {len(text)} characters long; at most {limit} are accepted "
            f"(setting VIGIE_MAX_{'POSTMORTEM' if kind == 'postmortem' else 'BODY'}_CHARS).", code="max_length")
    return text


def clean_instance_texts(sender, instance, **_kwargs) -> None:
    """pre_save: the text fields of an incident, update or maintenance are stored without forbidden
    characters, whichever door they came through (API, admin, config, automatic updates)."""
    for field in ("title", "body", "postmortem_body"):
        value = getattr(instance, field, None)
        if isinstance(value, str) and XML_FORBIDDEN.search(value):
            setattr(instance, field, clean_text(value))
