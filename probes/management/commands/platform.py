"""`manage.py platform authorize`: get a test account's access token from a Mastodon-compatible server.

The OAuth authorization-code flow with the out-of-band redirect, as Mastodon clients do it: register
an app, have the person logged in as the test account approve it in a browser, exchange the code
it shows for a token, check the token, and keep it where the configuration file can refer to it.
Every request goes through the probes' HTTP seam, so the SSRF guard and its allowance apply.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from platforms.errors import ProbeError
from platforms.http import HttpResult, HttpSeam
from platforms.netguard import LOOPBACK_NETWORKS, parse_allowance

OOB = "urn:ietf:wg:oauth:2.0:oob"
DEFAULT_SCOPES = "read write follow"
# What the Mastodon probes call (verify_credentials; timelines, statuses, conversations; posting,
# reblogging, deleting; following), and the broad scopes that include each.
PROBE_SCOPES = {
    "read:accounts": ("read", "profile"),
    "read:statuses": ("read",),
    "write:statuses": ("write",),
    "write:follows": ("write", "follow"),
}
CALL_SECONDS = 30  # each request's total deadline; the person's time at the prompt is not counted
KEPT_APPS = "oauth-apps.json"  # under VIGIE_DATA_DIR: an app registered but not yet used for a token


@dataclass
class OAuthApp:
    """A registered client. Its secret is needed once, to exchange the code, and never shown."""

    base_url: str
    scopes: str
    client_id: str
    client_secret: str = field(repr=False)

    @property
    def key(self) -> str:
        return f"{self.base_url} {self.scopes}"


class OAuthClient:
    """The Mastodon OAuth calls, over an HttpSeam; errors come out as CommandError with the server's words."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = HttpSeam(user_agent=f"Vigie/0.1 (platform authorize; +{settings.VIGIE_PUBLIC_URL})",
                             deadline=time.monotonic(), max_bytes=settings.VIGIE_MAX_RESPONSE_BYTES)

    def hide(self, secret: str) -> None:
        if secret and secret not in self.http.secrets:
            self.http.secrets.append(secret)

    def call(self, what: str, method: str, path: str, **kwargs: Any) -> HttpResult:
        self.http.deadline = time.monotonic() + CALL_SECONDS
        try:
            return self.http.request(method, self.base_url + path, **kwargs)
        except ProbeError as exc:
            raise CommandError(f"{what} on {self.base_url} failed: {self.http.redact(exc.message)}") from None

    def json(self, what: str, result: HttpResult) -> dict[str, Any]:
        try:
            data = result.json()
        except ProbeError:
            data = None
        if not isinstance(data, dict):
            kind = result.headers.get("content-type", "no content type")[:60]
            raise CommandError(f"{what}: {result.method} {result.path} answered {result.status} ({kind}) with no "
                               "JSON object: is this a Mastodon-compatible server?")
        return data

    def refusal(self, result: HttpResult) -> str:
        """The server's own reason: an OAuth error with its description, or Mastodon's {"error"}."""
        try:
            data = json.loads(result.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("error_description"), str):
            text = f"{data.get('error')}: {data['error_description']}"
        elif data is None and "html" in result.headers.get("content-type", ""):
            text = "an HTML page, not an API answer: is this a Mastodon-compatible server?"
        else:
            text = result.error_text(limit=300) or "(no reason given)"
        return f"{result.status}: {self.http.redact(text)[:300]}"

    def register_app(self, *, scopes: str, website: str) -> OAuthApp:
        what = "registering the app"
        result = self.call(what, "POST", "/api/v1/apps", data={
            "client_name": "Vigie", "redirect_uris": OOB, "scopes": scopes, "website": website})
        if not 200 <= result.status < 300:
            raise CommandError(f"{self.base_url} refused to register the app ({self.refusal(result)})")
        data = self.json(what, result)
        client_id, secret = data.get("client_id"), data.get("client_secret")
        if not (isinstance(client_id, str) and client_id and isinstance(secret, str) and secret):
            raise CommandError(f"{what}: the answer has no client_id and client_secret")
        self.hide(secret)
        return OAuthApp(self.base_url, scopes, client_id, secret)

    def authorize_url(self, app: OAuthApp) -> str:
        query = urlencode({"response_type": "code", "client_id": app.client_id, "redirect_uri": OOB,
                           "scope": app.scopes})
        return f"{self.base_url}/oauth/authorize?{query}"

    def exchange(self, app: OAuthApp, code: str) -> dict[str, Any]:
        self.hide(code)
        self.hide(app.client_secret)
        result = self.call("exchanging the code", "POST", "/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": app.client_id,
            "client_secret": app.client_secret, "redirect_uri": OOB, "scope": app.scopes})
        if result.status == 401:
            raise UnknownApp(f"the server does not know the app registered earlier ({self.refusal(result)})")
        if not 200 <= result.status < 300:
            raise CommandError(f"the server refused the authorization code ({self.refusal(result)}). "
                               "Open the address again for a new code; each code works once.")
        data = self.json("exchanging the code", result)
        token = data.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise CommandError("exchanging the code: the answer has no access_token")
        self.hide(token)
        if str(data.get("token_type", "Bearer")).lower() != "bearer":
            raise CommandError(f"exchanging the code: token_type {str(data.get('token_type'))[:40]!r}, "
                               "expected Bearer")
        return data

    def whoami(self, token: str) -> dict[str, Any]:
        result = self.call("checking the token", "GET", "/api/v1/accounts/verify_credentials", token=token)
        if not 200 <= result.status < 300:
            raise CommandError(f"the new token does not work: verify_credentials answered {self.refusal(result)}")
        data = self.json("checking the token", result)
        if not data.get("id") or not isinstance(data.get("username"), str):
            raise CommandError("checking the token: verify_credentials has no account id or username")
        return data


class UnknownApp(CommandError):
    """The kept app is gone from the server (its database was reset, the app deleted)."""


def missing_scopes(granted: list[str], wanted: list[str]) -> list[str]:
    """The wanted scopes the granted ones do not cover; `read` covers `read:statuses` and so on."""
    have = set(granted)
    return [s for s in wanted if s not in have and s.split(":", 1)[0] not in have]


def probe_scopes_missing(scopes: list[str]) -> list[str]:
    have = set(scopes)
    return [need for need, broad in PROBE_SCOPES.items() if need not in have and not have & set(broad)]


def normalize_base_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError(f"--base-url {raw!r}: expected the server's address, e.g. https://mastodon.example")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise CommandError(f"--base-url {raw!r}: no query, fragment or credentials, only the server's address")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _is_loopback(host: str) -> bool:
    try:
        (network,) = parse_allowance([host])
    except ValueError:
        return host == "localhost"
    return any(network.subnet_of(lo) for lo in LOOPBACK_NETWORKS if lo.version == network.version)


# -- the kept app: registered, not yet exchanged (so that --code can finish a flow started earlier) ----

def _kept_path() -> Path:
    return Path(settings.DATA_DIR) / KEPT_APPS


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, replacing it whole (never a half-written secret)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def kept_apps() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_kept_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def kept_app(base_url: str, scopes: str) -> OAuthApp | None:
    entry = kept_apps().get(f"{base_url} {scopes}")
    if isinstance(entry, dict) and entry.get("client_id") and entry.get("client_secret"):
        return OAuthApp(base_url, scopes, str(entry["client_id"]), str(entry["client_secret"]))
    return None


def kept_app_save(app: OAuthApp) -> None:
    apps = kept_apps()
    apps[app.key] = {"client_id": app.client_id, "client_secret": app.client_secret}
    _write_private(_kept_path(), json.dumps(apps, indent=1))


def kept_app_forget(app: OAuthApp) -> None:
    apps = kept_apps()
    if apps.pop(app.key, None) is not None:
        _write_private(_kept_path(), json.dumps(apps, indent=1))


def token_file_write(path: Path, token: str, *, force: bool) -> None:
    """The token and a newline (config's {file: PATH} drops it), mode 0600; never over a file unless forced."""
    if force:
        _write_private(path, token + "\n")
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} already exists; add --force to replace it") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(token + "\n")


def env_name(username: str) -> str:
    return "MASTODON_" + (re.sub(r"[^A-Z0-9]+", "_", username.upper()).strip("_") or "ACCOUNT") + "_TOKEN"


class Command(BaseCommand):
    help = ("Get a test account's access token from a Mastodon-compatible server: "
            "platform authorize --base-url URL [--scopes ...] [--token-file PATH].")
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        subs = parser.add_subparsers(dest="subcommand", required=True, metavar="{authorize}")
        auth = subs.add_parser(
            "authorize", help="register an app, let the test account approve it, and keep the token",
            description="Registers the app 'Vigie', prints the address where the test account approves it, "
                        "reads the code that page shows, exchanges it for a token, checks the token, and "
                        "writes it to --token-file (mode 0600) or prints it once.")
        auth.add_argument("--base-url", required=True, help="the server, e.g. https://mastodon.example")
        auth.add_argument("--scopes", default=DEFAULT_SCOPES,
                          help=f"OAuth scopes to ask for (default {DEFAULT_SCOPES!r}: what every probe needs)")
        auth.add_argument("--token-file", default=None,
                          help="write the token here (mode 0600) and print how to refer to it; "
                               "without it the token is printed once")
        auth.add_argument("--force", action="store_true", help="replace an existing --token-file")
        auth.add_argument("--code", default=None,
                          help="the authorization code, if you already have it from an earlier run's address "
                               "(otherwise it is asked for)")
        auth.add_argument("--website", default=None, help="the app's website (default: VIGIE_PUBLIC_URL)")

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        self.stdin: TextIO = options.get("stdin") or sys.stdin
        self.authorize(**options)

    def authorize(self, *, base_url: str, scopes: str, token_file: str | None, force: bool, code: str | None,
                  website: str | None, **_: Any) -> None:
        base_url = normalize_base_url(base_url)
        wanted = list(dict.fromkeys(scopes.split()))
        if not wanted:
            raise CommandError("--scopes is empty; the probes need 'read write follow'")
        scopes = " ".join(wanted)
        path = Path(token_file).expanduser().absolute() if token_file else None
        if path is not None:  # refuse before anyone opens a browser for nothing
            if path.exists() and not force:
                raise CommandError(f"{path} already exists; add --force to replace it")
            if not path.parent.is_dir():
                raise CommandError(f"{path.parent}: no such directory")
        lacking = probe_scopes_missing(wanted)
        if lacking:
            self.stderr.write(f"Warning: the scopes {scopes!r} do not include {', '.join(lacking)}: "
                              "some probes will fail with 'auth' or 'rejected'.")
        host = urlsplit(base_url).hostname or ""
        if base_url.startswith("http://") and not _is_loopback(host):
            self.stderr.write(f"Warning: {base_url} is plain HTTP: the token will cross the network unencrypted.")

        client = OAuthClient(base_url)
        if code is None:
            # A new app each time the address is shown: one kept from a run that was never finished
            # may be gone from the server, and its address would only show an error page.
            app = client.register_app(scopes=scopes, website=website or settings.VIGIE_PUBLIC_URL)
            kept_app_save(app)  # so that --code can finish this flow later
            self.stdout.write(f"Registered the app 'Vigie' on {base_url} (client id {app.client_id[:8]}…).")
            code = self.ask_code(client.authorize_url(app))
        else:
            app = kept_app(base_url, scopes)
            if app is None:
                raise CommandError(f"--code needs the app an earlier run registered on {base_url} with the scopes "
                                   f"{scopes!r}, and there is none: run this command without --code first")
            client.hide(app.client_secret)
            self.stdout.write(f"Using the app registered earlier on {base_url} (client id {app.client_id[:8]}…).")
        code = code.strip()
        if not code:
            raise CommandError("the authorization code is empty")

        try:
            granted = client.exchange(app, code)
        except UnknownApp as exc:
            kept_app_forget(app)
            raise CommandError(f"{exc}. It is forgotten: run this command again to register a new one.") from None
        token = granted["access_token"].strip()
        given = granted.get("scope")
        if isinstance(given, str):
            short = missing_scopes(given.replace(",", " ").split(), wanted)
            if short:
                raise CommandError(f"the server granted the scopes {given!r}, without {' '.join(short)} that were "
                                   f"asked for (was the approval narrowed?). The token was not saved; open the "
                                   "address again and approve every scope.")
        account = client.whoami(token)
        kept_app_forget(app)  # done: its secret is not needed any more
        username = account["username"]
        shown = given if isinstance(given, str) else scopes
        self.stdout.write(f"The token works: it is @{account.get('acct') or username} (id {account['id']}"
                          + (f", {account['display_name']!r}" if account.get("display_name") else "")
                          + f") with the scopes {shown!r}.")
        if path is not None:
            token_file_write(path, token, force=force)
            self.stdout.write(f"Token written to {path} (readable by you only). In the configuration file:\n"
                              f"  token: {{file: {path}}}")
        else:
            name = env_name(username)
            self.stdout.write("The token (shown this once; keep it out of the configuration file):\n"
                              f"  export {name}='{token}'\n"
                              f"and in the configuration file:\n  token: \"${{{name}}}\"")

    def ask_code(self, url: str) -> str:
        self.stdout.write("Open this address in a browser where you are logged in as the test account, "
                          "approve, and copy the code the page shows:\n\n"
                          f"  {url}\n")
        self.stdout.write("Authorization code: ", ending="")
        self.stdout.flush()
        try:
            line = self.stdin.readline()
        except KeyboardInterrupt:
            line = ""
        if not line.strip():
            raise CommandError("no authorization code entered. The app is kept: open the address above, then run "
                               "this command again with --code CODE")
        return line
