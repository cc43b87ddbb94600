"""Handlers for the subset of the Mastodon client API the sandbox speaks, with their fault scopes."""
from __future__ import annotations

from urllib.parse import quote, urlencode

import time

from .common import HTML_TYPE, TAKAHE_SERVER_ERROR
from .config import FOLLOW_INSERT_S
from .routing import Request, Response, Route, route

DEFAULT_LIMIT, MAX_LIMIT = 20, 40


def _user(req: Request):
    assert req.account is not None  # auth="user" routes only run with an authenticated account
    return req.account


def _limit(req: Request) -> int:
    raw = req.query.get("limit", [""])[-1]
    try:
        return max(1, min(MAX_LIMIT, int(raw)))
    except ValueError:
        return DEFAULT_LIMIT  # Mastodon falls back to the default on junk, it does not error


def _id_param(req: Request, name: str) -> int | None:
    raw = req.query.get(name, [""])[-1]
    return int(raw) if raw.isdigit() and len(raw) < 20 else None


# -- scopes: which fault action and operation a request is ------------------------------------------

def _post_scope(req: Request) -> tuple[str | None, str]:
    visibility = req.params.get("visibility")
    if isinstance(visibility, list):  # visibility[]=… or a JSON list: the handler uses the last value
        visibility = visibility[-1] if visibility else None
    return ("dm" if visibility == "direct" else "post"), "create"


def _delete_scope(req: Request) -> tuple[str | None, str]:
    return req.state.action_of_status(req.match["id"]), "undo"


def _fixed(action: str | None, op: str):
    return lambda req: (action, op)


# -- handlers -------------------------------------------------------------------------------------------

def verify_credentials(req: Request) -> Response:
    return Response(200, req.state.verify_credentials(_user(req)))


def instance(req: Request) -> Response:
    return Response(200, req.state.instance())


def get_account(req: Request) -> Response:
    return Response(200, req.state.account(req.match["id"]))


def relationships(req: Request) -> Response:
    ids = req.query.get("id[]", []) + req.query.get("id", [])
    return Response(200, req.state.relationships(_user(req), ids))


def post_status(req: Request) -> Response:
    text = req.text("status", "") or ""
    visibility = req.text("visibility") or "public"
    status = req.state.create_status(
        _user(req),
        text=text,
        visibility=visibility,
        spoiler_text=req.text("spoiler_text", "") or "",
        sensitive=req.flag("sensitive", False),
        language=req.text("language"),
        in_reply_to_id=req.text("in_reply_to_id"),
        idempotency_key=(req.headers.get("Idempotency-Key") or "").strip()[:256] or None,
        accept_overlong=req.effects.accept_overlong,
    )
    return Response(200, status)


def get_status(req: Request) -> Response:
    return Response(200, req.state.get_status(_user(req), req.match["id"]))


def delete_status(req: Request) -> Response:
    if req.effects.delete_lost:  # answered as deleted, and kept
        return Response(200, req.state.get_status(_user(req), req.match["id"]))
    return Response(200, req.state.delete_status(_user(req), req.match["id"]))


def reblog(req: Request) -> Response:
    wrapper = req.state.reblog(_user(req), req.match["id"], req.text("visibility"))
    if req.state.config.compat == "takahe" and isinstance(wrapper.get("reblog"), dict):
        return Response(200, {**wrapper["reblog"], "reblogged": True})  # the original, marked
    return Response(200, wrapper)


def unreblog(req: Request) -> Response:
    return Response(200, req.state.unreblog(_user(req), req.match["id"]))


def follow(req: Request) -> Response:
    state, viewer = req.state, _user(req)
    pair = (viewer.id, req.match["id"])
    takahe = state.config.compat == "takahe"
    if takahe:
        # Takahē inserts the follow row in a transaction: a second follow of the same pair at the
        # same moment breaks the unique constraint, and the server answers with its crash page.
        with state.lock:
            if pair in state.follows_inserting:
                return Response(500, TAKAHE_SERVER_ERROR, content_type=HTML_TYPE)
            state.follows_inserting.add(pair)
    try:
        if takahe:
            time.sleep(FOLLOW_INSERT_S)
        relationship = state.follow(viewer, req.match["id"], reblogs=req.flag("reblogs", True),
                                    notify=req.flag("notify", False), languages=req.strings("languages"))
    finally:
        if takahe:
            with state.lock:
                state.follows_inserting.discard(pair)
    return Response(200, relationship)


def unfollow(req: Request) -> Response:
    return Response(200, req.state.unfollow(_user(req), req.match["id"]))


def home_timeline(req: Request) -> Response:
    limit = _limit(req)
    statuses = req.state.home_timeline(_user(req), limit=limit, max_id=_id_param(req, "max_id"),
                                       since_id=_id_param(req, "since_id"), min_id=_id_param(req, "min_id"))
    headers = {}
    if statuses:
        # Pagination the Mastodon way, in a Link header (next = older, prev = newer).
        base = f"{req.state.base_url}/api/v1/timelines/home?"
        newer = urlencode({"limit": limit, "min_id": statuses[0]["id"]})
        older = urlencode({"limit": limit, "max_id": statuses[-1]["id"]})
        headers["Link"] = f'<{base}{older}>; rel="next", <{base}{newer}>; rel="prev"'
    return Response(200, statuses, headers)


def account_statuses(req: Request) -> Response:
    limit = _limit(req)
    statuses = req.state.account_statuses(_user(req), req.match["id"], limit=limit, max_id=_id_param(req, "max_id"))
    headers = {}
    if statuses:
        # Older pages through the Link header, as Mastodon does (Takahē too).
        base = f"{req.state.base_url}/api/v1/accounts/{quote(req.match['id'], safe='')}/statuses?"
        headers["Link"] = f'<{base}{urlencode({"limit": limit, "max_id": statuses[-1]["id"]})}>; rel="next"'
    return Response(200, statuses, headers)


def following(req: Request) -> Response:
    raw = req.query.get("limit", [""])[-1]
    limit = max(1, min(80, int(raw))) if raw.isdigit() and len(raw) < 6 else 40  # Mastodon: 40, at most 80
    return Response(200, req.state.following(req.match["id"], limit=limit))


def conversations(req: Request) -> Response:
    return Response(200, req.state.conversations(_user(req), limit=_limit(req)))


def conversation_read(req: Request) -> Response:
    return Response(200, req.state.mark_conversation_read(_user(req), req.match["id"]))


ID = r"(?P<id>[^/]+)"

ROUTES: list[Route] = [
    route("GET", "/api/v1/accounts/verify_credentials", verify_credentials),
    route("GET", "/api/v1/accounts/relationships", relationships),
    route("GET", f"/api/v1/accounts/{ID}/statuses", account_statuses, scope=_fixed("read", "read")),
    route("GET", f"/api/v1/accounts/{ID}/following", following, scope=_fixed("read", "read")),
    route("GET", f"/api/v1/accounts/{ID}", get_account),
    route("POST", f"/api/v1/accounts/{ID}/follow", follow, scope=_fixed("follow", "create"), families=("follows",)),
    route("POST", f"/api/v1/accounts/{ID}/unfollow", unfollow, scope=_fixed("follow", "undo")),
    route("GET", "/api/v2/instance", instance, auth="public"),
    route("POST", "/api/v1/statuses", post_status, scope=_post_scope, families=("statuses",)),
    route("GET", f"/api/v1/statuses/{ID}", get_status, scope=_fixed("read", "read")),
    route("DELETE", f"/api/v1/statuses/{ID}", delete_status, scope=_delete_scope, families=("deletes",)),
    route("POST", f"/api/v1/statuses/{ID}/reblog", reblog, scope=_fixed("repost", "create"), families=("statuses",)),
    route("POST", f"/api/v1/statuses/{ID}/unreblog", unreblog, scope=_fixed("repost", "undo"), families=("deletes",)),
    route("GET", "/api/v1/timelines/home", home_timeline, scope=_fixed("read", "read")),
    route("GET", "/api/v1/conversations", conversations, scope=_fixed("read", "read")),
    route("POST", f"/api/v1/conversations/{ID}/read", conversation_read, scope=_fixed(None, "other")),
]
