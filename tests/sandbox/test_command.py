"""`manage.py sandbox`: fault set/list/clear, artifacts and reset against a running sandbox; serve."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import datetime
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from .conftest import CONTROL_TOKEN

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(server):
    """Run `manage.py sandbox …` against the test server; returns stdout."""

    def run_command(*args: str) -> str:
        out = StringIO()
        call_command("sandbox", *args, "--url", server.url, "--token", CONTROL_TOKEN, stdout=out)
        return out.getvalue()

    return run_command


def test_fault_set_list_clear_roundtrip(run, prober, control):
    output = run("fault", "set", "read_only", "--action", "post", "--location", "atlanta", "--for", "20m")
    assert output.startswith("Fault 1 set: read_only on post at location atlanta, expires ")
    faults = control.get("/_sandbox/faults").json()["faults"]
    assert [(f["kind"], f["action"], f["location"]) for f in faults] == [("read_only", "post", "atlanta")]
    run("fault", "set", "slow:250", "--action", "*")
    listing = run("fault", "list")
    assert "read_only on post at location atlanta" in listing
    assert "slow:250 on * at all locations, until cleared" in listing
    assert run("fault", "clear", "1").startswith("Cleared fault 1: read_only")
    assert [f["kind"] for f in control.get("/_sandbox/faults").json()["faults"]] == ["slow:250"]
    assert run("fault", "clear") == "Cleared 1 fault.\n"
    assert run("fault", "list") == "No active faults.\n"


def test_fault_set_duration_reaches_the_server(run, control):
    run("fault", "set", "drop", "--action", "dm", "--for", "90s")
    fault = control.get("/_sandbox/faults").json()["faults"][0]
    created = datetime.strptime(fault["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(fault["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert 89.9 <= (expires - created).total_seconds() <= 90.1


@pytest.mark.parametrize("args, message", [
    (("fault", "set", "readonly", "--action", "post"), "did you mean 'read_only'"),
    (("fault", "set", "slow", "--action", "read"), "slow:3000"),
    (("fault", "set", "drop", "--action", "posting"), "did you mean 'post'"),
    (("fault", "set", "drop", "--action", "post", "--for", "ten minutes"), "bad duration 'ten minutes'"),
    (("fault", "set", "drop", "--action", "post", "--for", "0s"), "more than 0"),
    (("fault", "set", "drop", "--action", "post", "--location", "New York"), "--location"),
    (("fault", "clear", "99"), "no active fault with id '99'"),
    (("fault", "set", "drop"), "--action: say which action 'drop' applies to"),
])
def test_bad_input_is_a_command_error_naming_the_problem(run, control, args, message):
    with pytest.raises(CommandError) as error:
        run(*args)
    assert message in str(error.value)
    assert control.get("/_sandbox/faults").json()["faults"] == []


def test_accept_overlong_defaults_to_posting_and_says_so(run, control):
    output = run("fault", "set", "accept_overlong")
    assert "No --action given: accept_overlong applies to post" in output
    (fault,) = control.get("/_sandbox/faults").json()["faults"]
    assert (fault["kind"], fault["action"]) == ("accept_overlong", "post")


def test_unreachable_sandbox_is_reported(monkeypatch):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CommandError, match="sandbox not reachable at http://127.0.0.1:"):
        call_command("sandbox", "fault", "list", "--url", f"http://127.0.0.1:{port}", stdout=StringIO())


def test_wrong_control_token_is_reported(server):
    with pytest.raises(CommandError, match="refused the control token"):
        call_command("sandbox", "fault", "list", "--url", server.url, "--token", "nope", stdout=StringIO())


def test_control_token_comes_from_environment(server, monkeypatch):
    monkeypatch.setenv("SANDBOX_CONTROL_TOKEN", CONTROL_TOKEN)
    out = StringIO()
    call_command("sandbox", "fault", "list", "--url", server.url, stdout=out)
    assert out.getvalue() == "No active faults.\n"


def test_artifacts_and_reset(run, prober):
    assert "Nothing left behind." in run("artifacts")
    prober.toot("left over")
    prober.toot("@vigie_partner dm", visibility="direct")
    output = run("artifacts")
    assert "vigie_prober: 1 statuses, 0 reblogs, 0 follows, 1 direct messages" in output
    assert "vigie_partner: 0 statuses" in output and "Nothing left behind." not in output
    run("reset")
    assert "Nothing left behind." in run("artifacts")


def test_serve_prints_url_answers_and_stops_on_sigterm():
    env = {**os.environ, "SANDBOX_PROBER_TOKEN": "serve-test-token"}
    proc = subprocess.Popen([sys.executable, "manage.py", "sandbox", "serve", "--port", "0",
                             "--rate-limits", "mastodon", "--max-characters", "100"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("Sandbox platform listening on http://127.0.0.1:"), proc.stderr.read()
        url = line.rsplit(" ", 1)[1]
        instance = requests.get(f"{url}/api/v2/instance", timeout=5).json()
        assert instance["configuration"]["statuses"]["max_characters"] == 100
        me = requests.get(f"{url}/api/v1/accounts/verify_credentials", timeout=5,
                          headers={"Authorization": "Bearer serve-test-token"})
        assert me.json()["username"] == "vigie_prober" and me.headers["X-RateLimit-Limit"] == "300"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
