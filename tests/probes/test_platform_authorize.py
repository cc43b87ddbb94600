"""`manage.py platform authorize` against the live sandbox: the test plays the person at the prompt."""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from oncall.config import config_load
from probes.management.commands.platform import OAuthApp, kept_app_save
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN

ROOT = Path(__file__).resolve().parents[2]
AUTHORIZE_URL = re.compile(r"(https?://\S+/oauth/authorize\?\S+)")
CODE = re.compile(r'class="oauth-code" readonly type="text" value="([^"]+)"')


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    """The app kept between two runs lives in the data dir: a private one per test."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


def kept(data_dir: Path) -> dict:
    path = data_dir / "oauth-apps.json"
    return json.loads(path.read_text()) if path.exists() else {}


class Person:
    """Stands at the prompt: opens the printed address (as `login`, possibly narrowing the scopes),
    reads the code off the page and types it (or `types` something else)."""

    def __init__(self, stdout: StringIO, data_dir: Path, *, login: str | None = None, scope: str | None = None,
                 types: str | None = None) -> None:
        self.stdout, self.data_dir = stdout, data_dir
        self.login, self.scope, self.types = login, scope, types
        self.client_secrets: list[str] = []
        self.asked = 0

    def readline(self) -> str:
        self.asked += 1
        url = AUTHORIZE_URL.search(self.stdout.getvalue()).group(1)
        # The app is kept on disk while the person is away, readable by its owner only.
        path = self.data_dir / "oauth-apps.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        self.client_secrets = [entry["client_secret"] for entry in kept(self.data_dir).values()]
        return code_from(url, login=self.login, scope=self.scope) + "\n" if self.types is None else self.types


def code_from(url: str, *, login: str | None = None, scope: str | None = None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert query["redirect_uri"] == "urn:ietf:wg:oauth:2.0:oob" and query["response_type"] == "code"
    if scope:
        query["scope"] = scope
    if login:
        query["login"] = login
    page = requests.get(parts._replace(query=urlencode(query)).geturl(), timeout=5)
    assert page.status_code == 200, page.text
    return CODE.search(page.text).group(1)


def authorize(sandbox, *args: str, person=None, data_dir: Path | None = None, **person_kw):
    """Run the command; returns (stdout, stderr, the person)."""
    out, err = StringIO(), StringIO()
    person = person or Person(out, data_dir, **person_kw)
    person.stdout = out
    call_command("platform", "authorize", "--base-url", sandbox.url, *args, stdout=out, stderr=err, stdin=person)
    return out.getvalue(), err.getvalue(), person


def whoami(sandbox, token: str) -> requests.Response:
    return requests.get(f"{sandbox.url}/api/v1/accounts/verify_credentials", timeout=5,
                        headers={"Authorization": f"Bearer {token}"})


def test_it_writes_a_working_token_to_a_file_only_its_owner_can_read(sandbox, tmp_path, data_dir):
    path = tmp_path / "prober.token"
    out, err, person = authorize(sandbox, "--token-file", str(path), data_dir=data_dir)
    assert person.asked == 1
    token = path.read_text()
    assert token == PROBER_TOKEN + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    me = whoami(sandbox, token.strip())
    assert me.status_code == 200 and me.json()["username"] == "vigie_prober"
    assert "The token works: it is @vigie_prober (id 1" in out
    assert f"token: {{file: {path}}}" in out
    # Neither the token nor the client secret is ever shown; the kept app is forgotten once used.
    assert person.client_secrets and all(len(s) >= 32 for s in person.client_secrets)
    for secret in [PROBER_TOKEN, *person.client_secrets]:
        assert secret not in out + err
    assert kept(data_dir) == {}


def test_the_printed_config_reference_reads_the_token(sandbox, tmp_path, data_dir):
    path = tmp_path / "prober.token"
    out, _, _ = authorize(sandbox, "--token-file", str(path), data_dir=data_dir)
    reference = re.search(r"token: (\{file: .+\})", out).group(1)
    config = config_load(
        "locations: [{name: here}]\n"
        f"platforms:\n  - {{slug: m, name: M, kind: mastodon, base_url: {sandbox.url},\n"
        f"     accounts: {{prober: {{username: vigie_prober, token: {reference}}}}}}}\n", base_dir=tmp_path)
    assert config["platforms"][0]["accounts"]["prober"]["token"] == PROBER_TOKEN


def test_the_partner_gets_its_own_token_when_it_approves(sandbox, tmp_path, data_dir):
    path = tmp_path / "partner.token"
    out, _, _ = authorize(sandbox, "--token-file", str(path), data_dir=data_dir, login="vigie_partner")
    assert path.read_text().strip() == PARTNER_TOKEN
    assert "it is @vigie_partner (id 2" in out


def test_without_a_file_it_prints_the_token_once_and_how_to_refer_to_it(sandbox, data_dir, monkeypatch):
    out, err, _ = authorize(sandbox, data_dir=data_dir)
    assert out.count(PROBER_TOKEN) == 1
    assert f"export MASTODON_VIGIE_PROBER_TOKEN='{PROBER_TOKEN}'" in out
    reference = re.search(r'token: ("\$\{MASTODON_VIGIE_PROBER_TOKEN\}")', out).group(1)
    monkeypatch.setenv("MASTODON_VIGIE_PROBER_TOKEN", PROBER_TOKEN)
    config = config_load(
        "locations: [{name: here}]\n"
        f"platforms:\n  - {{slug: m, name: M, kind: mastodon, base_url: {sandbox.url},\n"
        f"     accounts: {{prober: {{username: vigie_prober, token: {reference}}}}}}}\n")
    assert config["platforms"][0]["accounts"]["prober"]["token"] == PROBER_TOKEN
    assert PROBER_TOKEN not in err


def test_it_refuses_to_overwrite_a_token_file_before_asking_anything(sandbox, sandbox_server, tmp_path, data_dir):
    path = tmp_path / "prober.token"
    path.write_text("keep me\n")
    with pytest.raises(CommandError, match="already exists; add --force"):
        authorize(sandbox, "--token-file", str(path), data_dir=data_dir)
    assert path.read_text() == "keep me\n"
    assert sandbox_server.state.apps == {}  # no app was registered for nothing


def test_force_replaces_the_file_and_makes_it_private(sandbox, tmp_path, data_dir):
    path = tmp_path / "prober.token"
    path.write_text("old\n")
    path.chmod(0o644)
    authorize(sandbox, "--token-file", str(path), "--force", data_dir=data_dir)
    assert path.read_text() == PROBER_TOKEN + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_wrong_code_fails_with_the_servers_words_and_writes_nothing(sandbox, tmp_path, data_dir):
    path = tmp_path / "prober.token"
    with pytest.raises(CommandError) as failure:
        authorize(sandbox, "--token-file", str(path), data_dir=data_dir, types="not-the-code\n")
    message = str(failure.value)
    assert "refused the authorization code (400: invalid_grant: The provided authorization grant is invalid" in message
    assert "not-the-code" not in message
    assert not path.exists()
    assert len(kept(data_dir)) == 1  # kept: the same address still gives a good code


def test_code_finishes_a_flow_started_earlier_and_works_once(sandbox, tmp_path, data_dir):
    path = tmp_path / "prober.token"
    with pytest.raises(CommandError, match="no authorization code entered.*--code CODE"):
        authorize(sandbox, "--token-file", str(path), data_dir=data_dir, types="")
    [(key, app)] = kept(data_dir).items()
    assert key == f"{sandbox.url} read write follow"
    assert stat.S_IMODE((data_dir / "oauth-apps.json").stat().st_mode) == 0o600

    out = StringIO()
    # The person opens the address of the first run (same app) and comes back with its code.
    url = f"{sandbox.url}/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": app["client_id"], "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
        "scope": "read write follow"})
    code = code_from(url)
    call_command("platform", "authorize", "--base-url", sandbox.url + "/", "--token-file", str(path),
                 f"--code={code}", stdout=out, stderr=StringIO(), stdin=StringIO())
    assert "Using the app registered earlier" in out.getvalue()
    assert whoami(sandbox, path.read_text().strip()).status_code == 200
    assert kept(data_dir) == {}

    with pytest.raises(CommandError, match="--code needs the app an earlier run registered"):
        call_command("platform", "authorize", "--base-url", sandbox.url, f"--code={code}",
                     stdout=StringIO(), stderr=StringIO(), stdin=StringIO())


def test_an_unfinished_run_left_behind_does_not_stop_a_new_one(sandbox, tmp_path, data_dir):
    """The server forgot the kept app (here: the sandbox was reset): a new run registers a new one."""
    with pytest.raises(CommandError, match="no authorization code entered"):
        authorize(sandbox, data_dir=data_dir, types="")
    [stale] = kept(data_dir).values()
    sandbox.control("POST", "/_sandbox/reset")
    path = tmp_path / "prober.token"
    authorize(sandbox, "--token-file", str(path), data_dir=data_dir)
    assert path.read_text().strip() == PROBER_TOKEN
    kept_app_save(OAuthApp(sandbox.url, "read write follow", stale["client_id"], stale["client_secret"]))
    with pytest.raises(CommandError, match="does not know the app registered earlier.*forgotten"):
        call_command("platform", "authorize", "--base-url", sandbox.url, "--code", "whatever",
                     stdout=StringIO(), stderr=StringIO(), stdin=StringIO())
    assert kept(data_dir) == {}


def test_an_approval_narrower_than_asked_is_refused(sandbox, tmp_path, data_dir):
    path = tmp_path / "prober.token"
    with pytest.raises(CommandError) as failure:
        authorize(sandbox, "--token-file", str(path), data_dir=data_dir, scope="read")
    assert "granted the scopes 'read', without write follow" in str(failure.value)
    assert "not saved" in str(failure.value)
    assert not path.exists()


def test_unknown_scopes_are_refused_by_the_server_at_registration(sandbox, data_dir):
    with pytest.raises(CommandError) as failure:
        authorize(sandbox, "--scopes", "read wirte", data_dir=data_dir)
    assert str(failure.value) == (f"{sandbox.url} refused to register the app "
                                  "(422: Validation failed: Scopes doesn't match configured on the server.)")
    assert kept(data_dir) == {}


def test_scopes_too_narrow_for_the_probes_are_warned_about(sandbox, data_dir):
    _, err, _ = authorize(sandbox, "--scopes", "read", data_dir=data_dir)
    assert "do not include write:statuses, write:follows" in err
    _, err, _ = authorize(sandbox, "--scopes", "read:accounts read:statuses write:statuses write:follows",
                          data_dir=data_dir)
    assert "do not include" not in err


def test_an_unreachable_server_is_said_so(data_dir):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CommandError, match=rf"registering the app on http://127.0.0.1:{port} failed: .*failed to "
                                           "connect"):
        call_command("platform", "authorize", "--base-url", f"http://127.0.0.1:{port}", stdout=StringIO(),
                     stderr=StringIO(), stdin=StringIO())


def test_the_ssrf_guard_applies_without_the_allowance(sandbox, sandbox_server, settings, data_dir):
    settings.VIGIE_ALLOW_PRIVATE_TARGETS = []
    with pytest.raises(CommandError, match="SSRF guard.*VIGIE_ALLOW_PRIVATE_TARGETS"):
        authorize(sandbox, data_dir=data_dir)
    assert sandbox_server.state.apps == {}


def test_a_server_that_is_not_mastodon_is_said_so(sandbox, data_dir):
    with pytest.raises(CommandError, match=r"refused to register the app \(404: Record not found\)"):
        call_command("platform", "authorize", "--base-url", sandbox.url + "/elsewhere", stdout=StringIO(),
                     stderr=StringIO(), stdin=StringIO())


@pytest.mark.parametrize("url", ["mastodon.example", "ftp://mastodon.example", "https://m.example/?x=1",
                                 "https://user:pw@m.example"])
def test_a_base_url_that_is_not_a_server_address_is_refused(url):
    with pytest.raises(CommandError, match="--base-url"):
        call_command("platform", "authorize", "--base-url", url, stdout=StringIO(), stderr=StringIO())


def test_over_a_real_terminal_pipe(sandbox, tmp_path):
    """The whole command as a person runs it: a process, its prompt on stdout, the code typed on stdin."""
    path = tmp_path / "prober.token"
    env = {**os.environ, "VIGIE_DATA_DIR": str(tmp_path / "data"), "VIGIE_ALLOW_PRIVATE_TARGETS": "loopback"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "platform", "authorize", "--base-url", sandbox.url, "--token-file", str(path)],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        shown = ""
        while not AUTHORIZE_URL.search(shown):
            line = process.stdout.readline()
            assert line, f"the command ended before printing the address: {shown}{process.stderr.read()}"
            shown += line
        process.stdin.write(code_from(AUTHORIZE_URL.search(shown).group(1)) + "\n")
        process.stdin.close()
        # Read through the pipe's own buffer (communicate() would skip what readline() already buffered).
        out, err = process.stdout.read(), process.stderr.read()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Authorization code: " in shown + out
    assert "The token works: it is @vigie_prober" in out
    assert path.read_text() == PROBER_TOKEN + "\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PROBER_TOKEN not in shown + out + err
