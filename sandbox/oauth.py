"""The sandbox's OAuth: app registration, an authorization screen that approves at once, and the token endpoint.

The flow is Mastodon's (Doorkeeper's authorization-code grant with the out-of-band redirect): the
page shows the code for the user to paste, and the token is the approving account's configured one.
"""
from __future__ import annotations

import base64
import binascii
from html import escape
from urllib.parse import unquote, urlsplit

from .common import ApiError
from .oauth_model import OOB, OAuthError
from .routing import Request, Response, Route, route

HTML_TYPE = "text/html; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _fixed_other(req: Request) -> tuple[str | None, str]:
    return None, "other"


def _redirect_uris(req: Request) -> list[str]:
    raw = req.require_params().get("redirect_uris[]", req.require_params().get("redirect_uris"))
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    uris = [line.strip() for item in items if isinstance(item, str) for line in item.splitlines() if line.strip()]
    if not uris:
        raise ApiError(422, "Validation failed: Redirect URI can't be blank")
    for uri in uris:
        parts = urlsplit(uri)
        if uri != OOB and not (parts.scheme and (parts.netloc or parts.scheme not in ("http", "https"))):
            raise ApiError(422, "Validation failed: Redirect URI must be an absolute URI.")
        if parts.fragment:
            raise ApiError(422, "Validation failed: Redirect URI cannot contain a fragment.")
    return uris


def create_app(req: Request) -> Response:
    name = (req.text("client_name") or "").strip()
    if not name:
        raise ApiError(422, "Validation failed: Name can't be blank")
    app = req.state.register_app(name=name[:60], redirect_uris=_redirect_uris(req),
                                 scopes=req.text("scopes") or "read", website=req.text("website") or None)
    return Response(200, app)


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title></head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def authorize(req: Request) -> Response:
    """GET /oauth/authorize: approves at once as the prober (or the account named by `login`, the
    sandbox's stand-in for being logged in) and shows the code, as Mastodon's out-of-band page does."""
    q = {name: values[-1] for name, values in req.query.items()}
    try:
        if q.get("response_type") != "code":
            raise OAuthError("unsupported_response_type")
        if not q.get("client_id") or not q.get("redirect_uri"):
            raise OAuthError("invalid_request")
        grant = req.state.authorize(client_id=q["client_id"], redirect_uri=q["redirect_uri"], scope=q.get("scope"),
                                    login=q.get("login"))
    except OAuthError as exc:
        body = f"<p class=\"error\">{escape(exc.code)}: {escape(exc.description)}</p>"
        return Response(exc.status, _page("An error has occurred", body), content_type=HTML_TYPE)
    if q["redirect_uri"] != OOB:
        # A web app's redirect: the code goes back to it in the query, as Doorkeeper does.
        location = f"{q['redirect_uri']}{'&' if '?' in q['redirect_uri'] else '?'}code={grant['code']}"
        return Response(302, "", headers={"Location": location}, content_type=HTML_TYPE)
    body = (f"<p>{escape(grant['app'])} may now use the account <strong>@{escape(grant['account'])}</strong> "
            f"with the scopes <code>{escape(' '.join(grant['scopes']))}</code>.</p>\n"
            "<p>Copy this authorization code and paste it to the application.</p>\n"
            f"<input class=\"oauth-code\" readonly type=\"text\" value=\"{escape(grant['code'])}\">")
    return Response(200, _page("Authorization code", body), headers=dict(NO_STORE), content_type=HTML_TYPE)


def _basic_credentials(req: Request) -> tuple[str | None, str | None]:
    scheme, _, value = (req.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return unquote(user), unquote(password)


def token(req: Request) -> Response:
    """POST /oauth/token, grant_type=authorization_code; client credentials in the form or HTTP Basic."""
    basic_id, basic_secret = _basic_credentials(req)
    token_json = req.state.exchange_code(
        grant_type=req.text("grant_type"), code=req.text("code"),
        client_id=req.text("client_id") or basic_id, client_secret=req.text("client_secret") or basic_secret,
        redirect_uri=req.text("redirect_uri"),
    )
    return Response(200, token_json, headers=dict(NO_STORE))


OAUTH_ROUTES: list[Route] = [
    route("POST", "/api/v1/apps", create_app, auth="public", scope=_fixed_other),
    route("GET", "/oauth/authorize", authorize, auth="public", scope=_fixed_other),
    route("POST", "/oauth/token", token, auth="public", scope=_fixed_other),
]
