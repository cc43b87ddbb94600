"""HTTP routes of the sandbox's official status page (public) and of its control (/_sandbox/official)."""
from __future__ import annotations

import json
import time

from .common import ApiError
from .routing import Request, Response, Route, route

ATOM_TYPE = "application/atom+xml; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"


def _page(req: Request, render) -> Response:
    """An official document, unless the page was told to answer badly (`answer`)."""
    state = req.state
    with state.lock:
        page = state.official_page()
        answer, now = page.answer, state.now()
        if answer == "ok" or answer.startswith("slow:"):
            body = render(page, state.base_url, now)
    if answer.startswith("slow:"):
        time.sleep(int(answer.partition(":")[2]) / 1000)
    if answer == "error":
        raise ApiError(503, "Service Unavailable")
    if answer == "html":
        return Response(200, "<!DOCTYPE html><html><head><title>Status</title></head><body><script>"
                             "location='javascript:alert(1)'</script>Loading…</body></html>", content_type=HTML_TYPE)
    if answer == "garbage":
        return Response(200, {"status": {"indicator": ["major"]}, "page": 1})
    if isinstance(body, str):
        return Response(200, body, content_type=ATOM_TYPE)
    return Response(200, body)


def status(req: Request) -> Response:
    return _page(req, lambda page, base, now: page.status(base, now))


def components(req: Request) -> Response:
    return _page(req, lambda page, base, now: page.components(base, now))


def summary(req: Request) -> Response:
    return _page(req, lambda page, base, now: page.summary(base, now))


def incidents(req: Request) -> Response:
    return _page(req, lambda page, base, now: page.incidents_json(base, now, unresolved=False))


def unresolved(req: Request) -> Response:
    return _page(req, lambda page, base, now: page.incidents_json(base, now, unresolved=True))


def atom(req: Request) -> Response:
    return _page(req, lambda page, base, now: page.atom(base, now))


# -- control ----------------------------------------------------------------------------------------

def _body(req: Request) -> dict:
    try:
        data = json.loads(req.body.decode("utf-8")) if req.body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def show(req: Request) -> Response:
    with req.state.lock:
        return Response(200, req.state.official_page().to_json(req.state.base_url))


def configure(req: Request) -> Response:
    data = _body(req)
    unknown = set(data) - {"ack_after_s", "answer"}
    if unknown:
        raise ApiError(400, f"unknown field {sorted(unknown)[0]!r}; allowed: ack_after_s, answer")
    with req.state.lock:
        page = req.state.official_page()
        try:
            page.settings(data)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return Response(200, page.to_json(req.state.base_url))


def declare(req: Request) -> Response:
    data = _body(req)
    name, listed = data.get("name"), data.get("components", [])
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ApiError(400, "name: the incident's title, 1-200 characters")
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise ApiError(400, "components: a list of component names")
    with req.state.lock:
        page = req.state.official_page()
        try:
            incident = page.declare(req.state.now(), name.strip(), listed, data.get("impact", "major"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return Response(201, page.incident_json(incident, req.state.base_url))


def resolve(req: Request) -> Response:
    with req.state.lock:
        count = req.state.official_page().resolve(req.state.now(), req.match.get("id"))
    if req.match.get("id") and not count:
        raise ApiError(404, f"no open official incident {req.match['id']!r}")
    return Response(200, {"resolved": count})


def clear(req: Request) -> Response:
    with req.state.lock:
        req.state.official.reset()
    return Response(200, {"cleared": True})


OFFICIAL_ROUTES: list[Route] = [
    route("GET", "/api/v2/status.json", status, auth="official"),
    route("GET", "/api/v2/components.json", components, auth="official"),
    route("GET", "/api/v2/summary.json", summary, auth="official"),
    route("GET", "/api/v2/incidents.json", incidents, auth="official"),
    route("GET", "/api/v2/incidents/unresolved.json", unresolved, auth="official"),
    route("GET", "/history.atom", atom, auth="official"),
    route("GET", "/_sandbox/official", show, auth="control"),
    route("POST", "/_sandbox/official", configure, auth="control"),
    route("DELETE", "/_sandbox/official", clear, auth="control"),
    route("POST", "/_sandbox/official/incidents", declare, auth="control"),
    route("POST", "/_sandbox/official/resolve", resolve, auth="control"),
    route("POST", r"/_sandbox/official/incidents/(?P<id>[0-9a-f]{1,32})/resolve", resolve, auth="control"),
]
