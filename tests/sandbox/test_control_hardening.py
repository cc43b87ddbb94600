"""Sandbox control (issue 17, finding 8): no fixed control token (random per start, written to
SANDBOX_CONTROL_TOKEN_FILE for the clients), and a Host header that is not the sandbox's is answered
421, so a page in a browser on the same machine cannot drive it by DNS rebinding."""
from __future__ import annotations

import os
import stat
from io import StringIO

import pytest
import requests
from django.core.management import call_command

from sandbox.config import SandboxConfig, control_token_read, control_token_write
from sandbox.server import make_server


@pytest.fixture
def live(monkeypatch):
    monkeypatch.delenv("SANDBOX_CONTROL_TOKEN", raising=False)
    server = make_server("127.0.0.1", 0, config=SandboxConfig(prober_token="p-token-1", partner_token="p-token-2"))
    server.start()
    yield server
    server.stop()


def test_the_control_token_is_random_per_start_unless_configured(monkeypatch):
    monkeypatch.delenv("SANDBOX_CONTROL_TOKEN", raising=False)
    first, second = SandboxConfig().control_token, SandboxConfig().control_token
    assert first != second and len(first) >= 24 and "sandbox-control-token" not in (first, second)
    monkeypatch.setenv("SANDBOX_CONTROL_TOKEN", "configured-control-token")
    assert SandboxConfig().control_token == "configured-control-token"


def test_a_foreign_host_header_is_answered_421(live):
    token = live.config.control_token
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{live.url}/_sandbox/faults", headers=headers, timeout=5).status_code == 200
    for host in ("localhost", f"localhost:{live.server_address[1]}", "[::1]:1"):
        assert requests.get(f"{live.url}/_sandbox/faults", headers={**headers, "Host": host},
                            timeout=5).status_code == 200, host
    for host in ("evil.example", f"rebound.attacker.example:{live.server_address[1]}", ""):
        answer = requests.get(f"{live.url}/_sandbox/faults", headers={**headers, "Host": host}, timeout=5)
        assert answer.status_code == 421, host
        answer = requests.get(f"{live.url}/api/v1/timelines/home", timeout=5,
                              headers={"Authorization": "Bearer p-token-1", "Host": host})
        assert answer.status_code == 421, host


def test_the_token_file_is_private_and_read_by_the_control_client(live, tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_CONTROL_TOKEN_FILE", str(tmp_path / "var" / "sandbox-control-token"))
    path = control_token_write(live.config.control_token)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert control_token_read() == live.config.control_token
    out = StringIO()
    call_command("sandbox", "fault", "list", "--url", live.url, stdout=out)
    assert out.getvalue() == "No active faults.\n"


def test_without_a_token_the_client_says_how_to_get_one(live, tmp_path, monkeypatch):
    from django.core.management import CommandError

    monkeypatch.setenv("SANDBOX_CONTROL_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="no control token: start the sandbox"):
        call_command("sandbox", "fault", "list", "--url", live.url, stdout=StringIO())
