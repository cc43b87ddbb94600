"""The sandbox's own control endpoint (/_sandbox/…): faults, artifacts and reset, behind a control token."""
from __future__ import annotations

import json

from .common import ApiError
from .faults import FaultSpecError, validate_spec
from .routing import Request, Response, Route, route

MAX_CONTROL_BODY = 64 * 1024


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, message, extra={"field": field})


def list_faults(req: Request) -> Response:
    # The mode too: `manage.py scenario run` checks it runs against the server the scenario is about.
    return Response(200, {"faults": req.state.list_faults(), "compat": req.state.config.compat})


def add_fault(req: Request) -> Response:
    if len(req.body) > MAX_CONTROL_BODY:
        raise _bad("body", f"body is {len(req.body)} bytes; the control endpoint accepts at most {MAX_CONTROL_BODY}")
    try:
        data = json.loads(req.body.decode("utf-8")) if req.body.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad("body", f"body is not valid JSON ({exc}); send e.g. "
                           '{"kind": "read_only", "action": "post", "duration_s": 600}') from None
    try:
        spec = validate_spec(data)
    except FaultSpecError as exc:
        raise _bad(exc.field, exc.message) from None
    return Response(201, req.state.add_fault(spec))


def clear_faults(req: Request) -> Response:
    return Response(200, {"cleared": req.state.clear_faults()})


def clear_fault(req: Request) -> Response:
    fault = req.state.remove_fault(req.match["id"])
    if fault is None:
        raise ApiError(404, f"No active fault with id {req.match['id']!r}", extra={"field": "id"})
    return Response(200, {"cleared": 1, "fault": fault})


def artifacts(req: Request) -> Response:
    return Response(200, req.state.artifacts())


def reset(req: Request) -> Response:
    req.state.reset()
    return Response(200, {"reset": True})


CONTROL_ROUTES: list[Route] = [
    route("GET", "/_sandbox/faults", list_faults, auth="control"),
    route("POST", "/_sandbox/faults", add_fault, auth="control"),
    route("DELETE", "/_sandbox/faults", clear_faults, auth="control"),
    route("DELETE", r"/_sandbox/faults/(?P<id>[^/]+)", clear_fault, auth="control"),
    route("GET", "/_sandbox/artifacts", artifacts, auth="control"),
    route("POST", "/_sandbox/reset", reset, auth="control"),
]
