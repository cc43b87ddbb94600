"""Compressed variants of the public cache's copies, and which one a request gets.

A copy (statuspage.cache.Kept) of a compressible response is encoded once, when it is rendered, in
gzip and brotli; every request served from it then picks one by its Accept-Encoding (RFC 9110
§12.5.3: q-values honoured, `identity` and `*` understood, a coding at q=0 never sent) and writes
a tenth of the bytes or less, instead of compressing on every request or not at all.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import re

import brotli

IDENTITY = "identity"
# Preferred first when a reader accepts several equally: the smallest first.
PREFERENCE = ("br", "gzip")
OFFERED = dict.fromkeys(PREFERENCE, b"")  # what any copy with variants has (negotiate looks at the keys)
# Below this, an encoded body saves less than its headers cost (nginx's gzip_min_length says the same).
MIN_BYTES = 1024
COMPRESSIBLE = ("text/", "application/json", "application/feed+json", "application/atom+xml",
                "application/rss+xml", "application/xml", "image/svg+xml", "application/javascript")
# Made once per public change and per page, then served thousands of times: the best ratio that
# stays well under a render's own time (brotli 11 takes ~0.5 s on the 263 KB status page, 9 a
# tenth of that for 5 % more bytes; gzip 9 ~10 ms).
BROTLI_QUALITY = 9
GZIP_LEVEL = 9


def variants(content: bytes, content_type: str) -> dict[str, bytes]:
    """The content in each encoding offered, or {} when it is not worth encoding."""
    if len(content) < MIN_BYTES or not content_type.lower().startswith(COMPRESSIBLE):
        return {}
    return {
        "br": brotli.compress(content, quality=BROTLI_QUALITY),
        # mtime=0: the same content gives the same bytes (and the same ETag) in every process.
        "gzip": gzip.compress(content, compresslevel=GZIP_LEVEL, mtime=0),
    }


def content_tag(content: bytes) -> str:
    """What names this content, whatever its encoding: the base of its ETags."""
    return hashlib.blake2b(content, digest_size=12).hexdigest()


def etag(tag: str, encoding: str) -> str:
    """The strong ETag of one variant: each encoding is a different representation (RFC 9110 §8.8.3)."""
    return f'"{tag}"' if encoding == IDENTITY else f'"{tag}-{encoding}"'


def negotiate(header: str | None, available) -> str:
    """The encoding of `available` (its keys, or IDENTITY) that `header` (Accept-Encoding) prefers.

    No header, or an empty one: identity (a client that says nothing may not decode). Otherwise
    the highest q wins; among equals, PREFERENCE order, then identity. A coding not named takes
    the q of `*` if there is one, else is not acceptable. Identity named (or `*` naming it)
    competes with its q; not named, it is what is sent when no coding is acceptable — and also
    when `identity;q=0` leaves nothing acceptable at all (RFC 9110 allows a 406; a page is more
    use)."""
    if not header:
        return IDENTITY
    weights = _weights(header)
    wildcard = weights.get("*")
    best, best_q = IDENTITY, weights.get(IDENTITY, wildcard)
    for name in reversed(PREFERENCE):  # the preferred last, so that it wins ties
        if name not in available:
            continue
        q = weights.get(name, wildcard or 0.0)
        if q > 0 and (best_q is None or q >= best_q):
            best, best_q = name, q
    return best


_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


@functools.lru_cache(maxsize=128)
def _weights(header: str) -> dict[str, float]:
    """Accept-Encoding as {coding: q}, lower-cased; x-gzip is gzip. An element with a malformed q
    is dropped (it says nothing reliable); of a coding named twice, the highest q counts."""
    weights: dict[str, float] = {}
    for element in header.split(","):
        name, _, params = element.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        if name == "x-gzip":
            name = "gzip"
        q: float | None = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else None
        if q is not None:
            weights[name] = max(q, weights.get(name, 0.0))
    return weights
