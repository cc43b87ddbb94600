"""Status text handling as Mastodon does it: countable length, mentions, hashtags, HTML content."""
from __future__ import annotations

import html
import re
import unicodedata

URL_CHARS = 23  # StatusLengthValidator::URL_PLACEHOLDER_CHARS, also instance characters_reserved_per_url
_URL = r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]"
# Account::MENTION_RE: not preceded by a word char, '/' or '='; optional @domain for remote accounts.
_MENTION = r"(?<![=/\w])@([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@(\w+(?:[.-]+\w+)*))?"
_HASHTAG = r"(?<![=/\w#])#(\w*[a-z_]\w*)"
URL_RE = re.compile(_URL, re.IGNORECASE)
MENTION_RE = re.compile(_MENTION, re.IGNORECASE)
TOKEN_RE = re.compile(f"(?P<url>{_URL})|(?P<mention>{_MENTION})|(?P<tag>{_HASHTAG})", re.IGNORECASE)


def _graphemes(text: str) -> int:
    """Approximate extended grapheme clusters with the standard library (Mastodon counts graphemes):
    combining marks, variation selectors, skin-tone modifiers and ZWJ sequences do not add a character,
    and a pair of regional indicators (a flag) counts once."""
    count = 0
    joined = False
    regional_open = False
    for ch in text:
        cp = ord(ch)
        if joined:  # the code point after a ZERO WIDTH JOINER belongs to the same cluster
            joined = False
            continue
        if cp == 0x200D:
            joined = True
            continue
        if unicodedata.combining(ch) or 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
            continue
        if 0x1F1E6 <= cp <= 0x1F1FF:
            if regional_open:
                regional_open = False
                continue
            regional_open = True
        else:
            regional_open = False
        count += 1
    return count - text.count("\r\n")  # "\r\n" is one grapheme


def countable_length(text: str, spoiler_text: str = "") -> int:
    """The length Mastodon checks against max_characters: every URL counts as 23 characters and a
    remote mention counts without its domain (app/validators/status_length_validator.rb)."""
    countable = URL_RE.sub("x" * URL_CHARS, text)
    countable = MENTION_RE.sub(lambda m: "@" + m.group(1), countable)
    return _graphemes(spoiler_text + countable)


def mentioned_usernames(text: str) -> list[str]:
    """Local usernames mentioned as @name (no domain), lowercased, in order, without repeats."""
    names: list[str] = []
    for match in MENTION_RE.finditer(text):
        if match.group(2) is None and match.group(1).lower() not in names:
            names.append(match.group(1).lower())
    return names


def hashtags(text: str) -> list[str]:
    names: list[str] = []
    for match in TOKEN_RE.finditer(text):
        if match.group("tag"):
            name = match.group("tag")[1:].lower()
            if name not in names:
                names.append(name)
    return names


def to_html(text: str, base_url: str, accounts_by_username: dict[str, dict]) -> str:
    """Render plain status text into Mastodon-style HTML: <p> per paragraph, <br /> per line break,
    h-card links for known local mentions, hashtag links and linkified URLs."""

    def render_line(line: str) -> str:
        out: list[str] = []
        pos = 0
        for match in TOKEN_RE.finditer(line):
            out.append(html.escape(line[pos:match.start()], quote=False))
            pos = match.end()
            token = match.group(0)
            if match.group("url"):
                scheme, _, rest = token.partition("://")
                out.append(f'<a href="{html.escape(token)}" target="_blank" rel="nofollow noopener" translate="no">'
                           f'<span class="invisible">{html.escape(scheme)}://</span>'
                           f'<span class="">{html.escape(rest)}</span><span class="invisible"></span></a>')
            elif match.group("mention"):
                username, _, domain = token[1:].partition("@")
                account = accounts_by_username.get(username.lower()) if not domain else None
                if account is None:
                    out.append(html.escape(token, quote=False))
                else:
                    out.append(f'<span class="h-card" translate="no"><a href="{html.escape(account["url"])}" '
                               f'class="u-url mention">@<span>{html.escape(account["username"])}</span></a></span>')
            else:
                tag = token[1:]
                out.append(f'<a href="{html.escape(base_url)}/tags/{html.escape(tag.lower())}" '
                           f'class="mention hashtag" rel="tag">#<span>{html.escape(tag)}</span></a>')
        out.append(html.escape(line[pos:], quote=False))
        return "".join(out)

    normalized = text.replace("\r\n", "\n").strip("\n")
    paragraphs = [p for p in re.split(r"\n{2,}", normalized) if p]
    return "".join("<p>" + "<br />".join(render_line(line) for line in p.split("\n")) + "</p>" for p in paragraphs)
