"""The adapter registry: platform kind → dotted path of its adapter class."""
from __future__ import annotations

import difflib

from django.utils.module_loading import import_string

from platforms.adapters.base import BaseAdapter

REGISTRY: dict[str, str] = {
    "bluesky": "platforms.adapters.bluesky.BlueskyAdapter",
    # Any HTTP API, as the probe's own script of steps and assertions.
    "http": "platforms.adapters.scripted.ScriptedAdapter",
    "mastodon": "platforms.adapters.mastodon.MastodonAdapter",
    # The bundled sandbox speaks the Mastodon client API: the same adapter watches it, with the
    # sandbox's generous documented limits instead of Mastodon's.
    "sandbox": "platforms.adapters.mastodon.SandboxAdapter",
    "x": "platforms.adapters.x.XAdapter",
}


class UnknownAdapter(LookupError):
    pass


def adapter_class(kind: str) -> type[BaseAdapter]:
    try:
        return import_string(REGISTRY[kind])
    except KeyError:
        close = difflib.get_close_matches(kind, REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(REGISTRY))
        raise UnknownAdapter(f"Unknown platform kind {kind!r}.{hint} Known kinds: {known}.") from None
