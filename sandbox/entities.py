"""JSON renderings of Mastodon entities, shaped after the recorded exchanges in shared/reference."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .common import iso_ms
from .text import URL_CHARS, to_html

# `state` is a sandbox.state.SandboxState; sandbox.state imports this module, not the other way.

VERSION = "4.3.0+sandbox"


@dataclass
class Account:
    id: str
    username: str
    display_name: str
    token: str
    created_at: datetime


@dataclass
class Status:
    id: int
    account_id: str
    text: str
    visibility: str
    created_at: datetime
    spoiler_text: str = ""
    sensitive: bool = False
    language: str | None = "en"
    mention_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    reblog_of: int | None = None
    in_reply_to_id: int | None = None
    in_reply_to_account_id: str | None = None
    # Fan-out: when (state.clock time) the background worker delivers it to followers' home
    # timelines, and whether it has. The author reads it at once either way.
    fanout_at: float = 0.0
    delivered: bool = True


@dataclass
class Follow:
    reblogs: bool = True
    notify: bool = False
    languages: list[str] | None = None
    # When the follow takes effect (state.clock time): until then it is pending, as on a server
    # whose background worker completes follows (Takahē), and answered `following: false`.
    effective_at: float = 0.0


def account_json(state: SandboxState, account: Account) -> dict[str, Any]:
    base = state.base_url
    statuses = [s for s in state.statuses.values() if s.account_id == account.id]
    last = max((s.created_at for s in statuses), default=None)
    missing = f"{base}/avatars/original/missing.png"
    return {
        "id": account.id,
        "username": account.username,
        "acct": account.username,
        "display_name": account.display_name,
        "locked": state.config.compat == "mastodon-locked",
        # Honest about what these accounts are: automated probes.
        "bot": True,
        "discoverable": False,
        "indexable": False,
        "group": False,
        "created_at": iso_ms(account.created_at),
        "note": "<p>Synthetic account used by Vigie's probes.</p>",
        "url": f"{base}/@{account.username}",
        "uri": f"{base}/ap/users/{account.id}",
        "avatar": missing,
        "avatar_static": missing,
        "avatar_description": "",
        "header": f"{base}/headers/original/missing.png",
        "header_static": f"{base}/headers/original/missing.png",
        "header_description": "",
        "followers_count": sum(1 for (_, target) in state.follows if target == account.id),
        "following_count": sum(1 for (follower, _) in state.follows if follower == account.id),
        "statuses_count": len(statuses),
        "last_status_at": last.date().isoformat() if last else None,
        "hide_collections": None,
        "show_media": True,
        "show_media_replies": True,
        "show_featured": True,
        "noindex": False,
        "emojis": [],
        "roles": [],
        "fields": [],
    }


def credential_account_json(state: SandboxState, account: Account) -> dict[str, Any]:
    data = account_json(state, account)
    data["source"] = {
        "privacy": "public",
        "sensitive": False,
        "language": None,
        "note": "Synthetic account used by Vigie's probes.",
        "fields": [],
        "follow_requests_count": 0,
        "hide_collections": None,
        "discoverable": False,
        "indexable": False,
        "attribution_domains": [],
    }
    data["role"] = {"id": "-99", "name": "", "permissions": "65536", "color": "", "highlighted": False}
    return data


def mention_json(state: SandboxState, account: Account) -> dict[str, str]:
    return {"id": account.id, "username": account.username,
            "url": f"{state.base_url}/@{account.username}", "acct": account.username}


def status_json(state: SandboxState, status: Status, viewer: Account | None, *, source: bool = False) -> dict[str, Any]:
    """A Status as `viewer` sees it. `source=True` renders the delete response: `text` instead of `content`."""
    base = state.base_url
    author = state.accounts[status.account_id]
    own = viewer is not None and viewer.id == author.id
    if status.reblog_of is not None:
        original = state.statuses.get(status.reblog_of)
        inner = status_json(state, original, viewer) if original else None
        uri = f"{base}/ap/users/{author.id}/statuses/{status.id}/activity"
        url = f"{base}/users/{author.username}/statuses/{status.id}/activity"
    else:
        inner = None
        uri = f"{base}/ap/users/{author.id}/statuses/{status.id}"
        url = f"{base}/@{author.username}/{status.id}"
    data: dict[str, Any] = {
        "id": str(status.id),
        "created_at": iso_ms(status.created_at),
        "in_reply_to_id": str(status.in_reply_to_id) if status.in_reply_to_id else None,
        "in_reply_to_account_id": status.in_reply_to_account_id,
        "sensitive": status.sensitive,
        "spoiler_text": status.spoiler_text,
        "visibility": status.visibility,
        "language": status.language,
        "uri": uri,
        "url": url,
        "replies_count": sum(1 for s in state.statuses.values() if s.in_reply_to_id == status.id),
        "reblogs_count": sum(1 for s in state.statuses.values() if s.reblog_of == status.id),
        "favourites_count": 0,
        "quotes_count": 0,
        "edited_at": None,
        "favourited": False,
        "reblogged": viewer is not None and state.reblog_by(viewer.id, status.reblog_of or status.id) is not None,
        "muted": False,
        "bookmarked": False,
    }
    if own and status.reblog_of is None and status.visibility != "direct":
        data["pinned"] = False  # Mastodon only sends `pinned` to the author of a pinnable status
    if source:
        data["text"] = status.text
    else:
        usernames = {a.username: {"url": f"{base}/@{a.username}", "username": a.username}
                     for a in state.accounts.values()}
        data["content"] = to_html(status.text, base, usernames) if status.reblog_of is None else ""
    data.update({
        "filtered": [],
        "reblog": inner,
        "application": None if status.reblog_of is not None else {"name": "Vigie", "website": None},
        "account": account_json(state, author),
        "media_attachments": [],
        "mentions": [mention_json(state, state.accounts[i]) for i in status.mention_ids],
        "tags": [{"name": t, "url": f"{base}/tags/{t}"} for t in status.tags],
        "emojis": [],
        "quote": None,
        "card": None,
        "poll": None,
    })
    return data


def relationship_json(state: SandboxState, viewer: Account, target: Account) -> dict[str, Any]:
    follow = state.follows.get((viewer.id, target.id))
    requested = False
    if follow is not None and follow.effective_at > state.clock():
        # Pending: Takahē answers neither following nor requested until its worker ran; Mastodon
        # answers `requested` for a locked or remote account until the request is accepted.
        requested = state.config.compat == "mastodon-locked"
        follow = None
    return {
        "id": target.id,
        "following": follow is not None,
        "showing_reblogs": bool(follow and follow.reblogs),
        "notifying": bool(follow and follow.notify),
        "languages": follow.languages if follow else None,
        "followed_by": (target.id, viewer.id) in state.follows,
        "blocking": False,
        "blocked_by": False,
        "muting": False,
        "muting_notifications": False,
        "muting_expires_at": None,
        "requested": requested,
        "requested_by": False,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }


def instance_json(state: SandboxState) -> dict[str, Any]:
    base = state.base_url
    domain = base.split("://", 1)[-1].rstrip("/")
    config = state.config
    return {
        "domain": domain,
        "title": config.title,
        "version": VERSION,
        "source_url": "https://github.com/mastodon/mastodon",
        "description": "Sandbox platform bundled with Vigie: a Mastodon API subset with fault injection.",
        "usage": {"users": {"active_month": len(state.accounts)}},
        "thumbnail": {"url": f"{base}/packs/media/images/preview.png"},
        "icon": [],
        "languages": ["en"],
        "configuration": {
            "urls": {"streaming": None, "status": None, "about": f"{base}/about",
                     "privacy_policy": None, "terms_of_service": None},
            "vapid": {"public_key": ""},
            "accounts": {"max_display_name_length": 30, "max_note_length": 500, "max_featured_tags": 10,
                         "max_pinned_statuses": 5, "max_profile_fields": 4, "profile_field_name_limit": 255,
                         "profile_field_value_limit": 255},
            "statuses": {"max_characters": config.max_characters, "max_media_attachments": 4,
                         "characters_reserved_per_url": URL_CHARS},
            "media_attachments": {"description_limit": 1500, "image_matrix_limit": 16777216,
                                  "image_size_limit": 16777216, "supported_mime_types": [],
                                  "video_frame_rate_limit": 120, "video_matrix_limit": 8294400,
                                  "video_size_limit": 103809024},
            "polls": {"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300,
                      "max_expiration": 2629746},
            "translation": {"enabled": False},
        },
        "registrations": {"enabled": False, "approval_required": False, "message": None, "url": None},
        "api_versions": {"mastodon": 2},
        "contact": {"email": "", "account": None},
        "rules": [],
    }
