"""HTTP front of the sandbox: a ThreadingHTTPServer that routes, authenticates, rate-limits and injects faults."""
from __future__ import annotations

from datetime import timedelta

import json
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .api import ROUTES
from .common import HTML_TYPE, INVALID_TOKEN, NOT_FOUND, SERVER_ERROR, TAKAHE_SERVER_ERROR, TOO_MANY, ApiError, iso_us
from .config import SandboxConfig
from .control import CONTROL_ROUTES
from .faults import location_from_user_agent
from .oauth import OAUTH_ROUTES
from .official_api import OFFICIAL_ROUTES
from .routing import JSON_TYPE, Request, Response, Route, find_route
from .state import SandboxState

MAX_BODY = 1024 * 1024  # larger bodies get 413, as a front proxy would answer
# What a Takahē-like server answers for a missing status: its web 404 page, not JSON.
TAKAHE_NOT_FOUND = ("<!DOCTYPE html><html lang=\"en\"><head><title>Page Not Found - Takahē</title></head>"
                    "<body><main><h1>Page Not Found</h1><p>Sorry, we could not find that page.</p></main></body></html>")
# How a Takahē-like server refuses writes when read-only (a crash page, 500) and a bad token (400,
# text/html, not 401): both seen from Takahē 0.11.
TAKAHE_BAD_TOKEN = "Invalid Bearer token"
DRAIN_LIMIT = 16 * MAX_BODY  # read and discard up to this much so the client sees the 413, not a reset
WWW_AUTHENTICATE = 'Bearer realm="Doorkeeper", error="invalid_token"'
READ_ONLY_TEXT = "This server is in read-only mode. Please try again later."
QUOTA_TEXT = "You are over the daily limit for sending posts."
QUOTA_FOLLOW_TEXT = "You are unable to follow more people at this time."
QUOTA_LIMIT = 2400  # Twitter's daily post allowance in the Feb 2023 outage

ALL_ROUTES: list[Route] = CONTROL_ROUTES + OFFICIAL_ROUTES + OAUTH_ROUTES + ROUTES


class _Dropped(Exception):
    """The connection was closed on purpose (drop fault, unreadable body): send nothing more."""


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as probes' connection pools expect
    server_version = "VigieSandbox/1"
    sys_version = ""
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections and stalled clients do not hold a thread forever
    server: SandboxServer

    # -- plumbing -----------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature from http.server)
        if self.server.verbose:  # quiet by default: the sandbox runs beside tests and demos
            sys.stderr.write(f"sandbox {self.address_string()} [{self.log_date_time_string()}] {format % args}\n")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (malformed request line, headers too long…) in JSON like everything else.
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsable request line: still answer with a status line
            self.request_version = "HTTP/1.0"
        text = NOT_FOUND if code == 404 else message or HTTPStatus(code).phrase
        self._send(code, {"error": text}, {})

    def _send(self, status: int, body, headers: dict[str, str], content_type: str = JSON_TYPE) -> None:
        if content_type == JSON_TYPE:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        else:  # a page (the OAuth authorization screens), already rendered
            data = str(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drop(self) -> None:
        self.log_message('"%s" dropped by fault', self.requestline)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ApiError(400, f"Invalid Content-Length header: {raw!r}") from None
        if length > MAX_BODY:
            self._too_large(length)
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            raise _Dropped
        return body

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "Malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                self._too_large(None)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _too_large(self, length: int | None) -> None:
        self.close_connection = True
        if length is not None and length <= DRAIN_LIMIT:
            remaining = length
            while remaining > 0:
                got = self.rfile.read(min(65536, remaining))
                if not got:
                    break
                remaining -= len(got)
        raise ApiError(413, f"Request body too large (limit {MAX_BODY} bytes)")

    # -- request pipeline ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            response = self._handle()
        except _Dropped:
            return
        except ApiError as exc:
            response = Response(exc.status, exc.body(), exc.headers)
            if exc.status == 404 and self.server.config.compat == "takahe":
                response = Response(404, TAKAHE_NOT_FOUND, exc.headers, content_type="text/html; charset=utf-8")
        except Exception:  # the sandbox must answer, never crash: report a 500 and keep serving
            if self.server.verbose:
                traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            response = Response(500, {"error": SERVER_ERROR})
        try:
            self._send(response.status, response.body, response.headers, response.content_type)
        except OSError:
            self.close_connection = True

    def _handle(self) -> Response:
        if not self.server.host_allowed(self.headers.get("Host")):
            # DNS rebinding: a page on another site, its name pointed at 127.0.0.1, sends its own Host.
            raise ApiError(421, "Misdirected request: this sandbox answers only to its own host name.")
        parts = urlsplit(self.path)
        path = unquote(parts.path).rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        body = self._read_body()
        state = self.server.state
        found, match = find_route(ALL_ROUTES, self.command, path)
        if found is None:
            raise ApiError(404, NOT_FOUND)
        req = Request(self.command, path, query, self.headers, body, state, match=match)
        if found.auth == "control":
            if not state.is_control_token(req.bearer()):
                raise ApiError(401, INVALID_TOKEN, headers={"WWW-Authenticate": WWW_AUTHENTICATE})
            return found.handler(req)
        if found.auth == "official":
            # The platform's status page is served apart from its API: the API's faults do not reach it.
            return found.handler(req)
        return self._api(found, req)

    def _api(self, found: Route, req: Request) -> Response:
        state = req.state
        action, op = found.scope(req)
        req.effects = effects = state.effects(action, op, location_from_user_agent(self.headers.get("User-Agent")))
        # Infrastructure-level faults first: they happen before the application sees the request.
        if effects.delay_ms:
            time.sleep(effects.delay_ms / 1000)
        if effects.drop:
            self._drop()
        if effects.server_error:
            raise ApiError(500, SERVER_ERROR)
        req.account = state.account_for_token(req.bearer())
        takahe = self.server.config.compat == "takahe"
        if req.account is None and found.auth == "user":
            if takahe:
                return Response(400, TAKAHE_BAD_TOKEN, content_type=HTML_TYPE)
            raise ApiError(401, INVALID_TOKEN, headers={"WWW-Authenticate": WWW_AUTHENTICATE})
        limit_headers: dict[str, str] = {}
        if req.account is not None:
            verdict = state.rate_limit(req.account, ["api", *found.families])
            # Takahē-like servers send no rate-limit headers.
            limit_headers = verdict.headers() if not takahe else {}
            if not verdict.allowed:
                raise ApiError(429, TOO_MANY, headers=limit_headers)
        try:
            if effects.refusal == "read_only":
                if takahe:
                    return Response(500, TAKAHE_SERVER_ERROR, limit_headers, content_type=HTML_TYPE)
                raise ApiError(503, READ_ONLY_TEXT)
            if effects.refusal == "quota_exceeded":
                # A rolling daily allowance, as X described its posting limits ("roaming windows"):
                # the far reset, not the text, is what tells a quota from a short 429. (Not the next
                # midnight: just before midnight that reset would look like a short throttle.)
                reset = state.now() + timedelta(hours=24)
                raise ApiError(429, QUOTA_FOLLOW_TEXT if action == "follow" else QUOTA_TEXT, headers={
                    "X-RateLimit-Limit": str(QUOTA_LIMIT), "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": iso_us(reset)})
            response = found.handler(req)
        except ApiError as exc:
            exc.headers = {**limit_headers, **exc.headers}
            raise
        response.headers = {**limit_headers, **response.headers}
        return response


class SandboxServer(ThreadingHTTPServer):
    """The sandbox platform. `url` is its base URL, `state` its store; serve with serve_forever() or start()."""

    daemon_threads = True
    block_on_close = False  # server_close() must not wait for idle keep-alive connections

    def __init__(self, host: str, port: int, config: SandboxConfig) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.config = config
        self.state = SandboxState(config)
        super().__init__((host, port), SandboxHandler)
        bound_host, bound_port = self.server_address[:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        self.url = f"http://{shown}:{bound_port}"
        self.state.base_url = (config.public_url or self.url).rstrip("/")
        self.hosts = {"localhost", "127.0.0.1", "::1", str(bound_host).lower(), *config.allowed_hosts}
        if config.public_url:
            self.hosts.add((urlsplit(config.public_url).hostname or "").lower())
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving.set()
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving.clear()

    def host_allowed(self, header: str | None) -> bool:
        """Whether a request's Host names this sandbox (its port is not checked: a proxy may change it)."""
        if not header:
            return False
        try:
            host = (urlsplit(f"//{header.strip()}").hostname or "").lower()
        except ValueError:
            return False
        return host in self.hosts

    @property
    def verbose(self) -> bool:
        return self.config.verbose

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (tests, embedded runs); stop() ends it."""
        # A short poll interval keeps stop() quick (shutdown waits for the loop's next poll).
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sandbox-server", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        if self._serving.is_set():  # shutdown() would wait forever if nothing is serving
            self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def handle_error(self, request, client_address) -> None:
        # Connection-level errors (client resets, timeouts) are routine for a fault injector.
        if self.verbose:
            super().handle_error(request, client_address)


def make_server(host: str = "127.0.0.1", port: int = 0, *, config: SandboxConfig | None = None) -> SandboxServer:
    """Bind a sandbox server (port 0 picks a free port); call serve_forever() or start() to serve."""
    return SandboxServer(host, port, config or SandboxConfig())
