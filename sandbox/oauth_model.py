"""OAuth applications and authorization codes of the sandbox, with Mastodon's scopes and Doorkeeper's error texts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .common import ApiError

# Mastodon's scopes (config/initializers/doorkeeper.rb): the three broad ones, their granular parts,
# push, profile and the admin scopes. Anything else is refused at registration.
GRANULAR = {
    "read": ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists", "mutes",
             "notifications", "search", "statuses"),
    "write": ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters", "follows", "lists",
              "media", "mutes", "notifications", "reports", "statuses"),
}
SCOPES = frozenset({"read", "write", "follow", "push", "profile", "admin:read", "admin:write",
                    *(f"{kind}:{part}" for kind, parts in GRANULAR.items() for part in parts)})
OOB = "urn:ietf:wg:oauth:2.0:oob"

# Doorkeeper's own texts (config/locales/en.yml) and the status it answers each with.
OAUTH_ERRORS = {
    "invalid_request": (400, "The request is missing a required parameter, includes an unsupported parameter "
                             "value, or is otherwise malformed."),
    "invalid_redirect_uri": (400, "The requested redirect uri is malformed or doesn't match client redirect URI."),
    "invalid_scope": (400, "The requested scope is invalid, unknown, or malformed."),
    "access_denied": (403, "The resource owner or authorization server denied the request."),
    "unsupported_response_type": (400, "The authorization server does not support this response type."),
    "invalid_client": (401, "Client authentication failed due to unknown client, no client authentication "
                            "included, or unsupported authentication method."),
    "invalid_grant": (400, "The provided authorization grant is invalid, expired, revoked, does not match the "
                           "redirection URI used in the authorization request, or was issued to another client."),
    "unsupported_grant_type": (400, "The authorization grant type is not supported by the authorization server."),
}


class OAuthError(ApiError):
    """An OAuth error: {"error": <code>, "error_description": <text>} (RFC 6749 §5.2), as Doorkeeper answers."""

    def __init__(self, code: str, description: str | None = None) -> None:
        status, text = OAUTH_ERRORS[code]
        super().__init__(status, code, extra={"error_description": description or text})
        self.code = code
        self.description = description or text


def scope_list(scopes: str) -> list[str]:
    return [s for s in scopes.replace("+", " ").split() if s]


def check_scopes(scopes: str) -> list[str]:
    """The registered scopes, or the 422 Mastodon answers when one is unknown."""
    wanted = scope_list(scopes) or ["read"]
    if not set(wanted) <= SCOPES:
        raise ApiError(422, "Validation failed: Scopes doesn't match configured on the server.")
    return list(dict.fromkeys(wanted))


@dataclass
class App:
    id: str
    name: str
    website: str | None
    scopes: list[str]
    redirect_uris: list[str]
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)

    def to_json(self, *, credentials: bool) -> dict[str, Any]:
        """Mastodon's Application entity; the credentials only in the answer to POST /api/v1/apps."""
        data: dict[str, Any] = {"id": self.id, "name": self.name, "website": self.website, "scopes": self.scopes,
                                "redirect_uris": self.redirect_uris, "vapid_key": "",
                                "redirect_uri": "\n".join(self.redirect_uris)}
        if credentials:
            data.update(client_id=self.client_id, client_secret=self.client_secret, client_secret_expires_at=0)
        return data


@dataclass
class Grant:
    """An authorization code: good once, for its app and redirect URI, for ten minutes."""

    code: str = field(repr=False)
    client_id: str
    account_id: str
    scopes: list[str]
    redirect_uri: str
    expires_at: float
    used: bool = False
