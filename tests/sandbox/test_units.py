"""Pure helpers of the sandbox: durations, User-Agent locations, fault resolution, character counting."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from sandbox.faults import Fault, location_from_user_agent, parse_duration, resolve
from sandbox.text import countable_length, mentioned_usernames

from .conftest import PROBER_TOKEN, Client


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("20m", 1200), ("1h", 3600), ("1h30m", 5400),
                                           ("1.5h", 5400), ("2d", 172800), (" 45S ", 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "m", "5x", "1h 30m", "-5s", "0s", "31d"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize("agent, location", [
    ("Vigie/0.1 (probe; location=atlanta; +https://status.example)", "atlanta"),
    ("Vigie/0.1 (probe; location=Sacramento)", "sacramento"),
    ("Vigie/0.1 (probe; location=us-east_1)", "us-east_1"),
    ("Vigie/0.1 (probe; relocation=atlanta)", None),
    ("python-requests/2.34", None),
    (None, None),
])
def test_location_from_user_agent(agent, location):
    assert location_from_user_agent(agent) == location


def _fault(fid, kind, action, location=None):
    return Fault(fid, kind, action, location, datetime.now(timezone.utc))


def test_resolve_by_op_and_scope():
    faults = [_fault("1", "quota_exceeded", "*"), _fault("2", "read_only", "follow"),
              _fault("3", "slow:200", "read"), _fault("4", "slow:900", "*", "atlanta")]
    create = resolve(faults, "post", "create", None)
    assert (create.refusal, create.delay_ms) == ("quota_exceeded", 0)
    assert resolve(faults, "post", "undo", None).refusal is None  # quota spares undo
    assert resolve(faults, "follow", "undo", None).refusal == "read_only"  # read-only does not
    read = resolve(faults, "read", "read", "atlanta")
    assert (read.refusal, read.delay_ms, read.matched) == (None, 900, ["3", "4"])
    assert resolve(faults, None, "read", None).matched == []


def test_countable_length_rules():
    assert countable_length("abc") == 3
    assert countable_length("https://example.com/" + "x" * 100) == 23
    assert countable_length("@someone@mastodon.social") == len("@someone")
    assert countable_length("👍🏽👨‍👩‍👧🇫🇷e\u0301") == 4
    assert countable_length("ab", spoiler_text="cw") == 4


def test_mentions_are_local_usernames_once():
    assert mentioned_usernames("@Vigie_Partner hi @vigie_partner @remote@else.where a@b") == ["vigie_partner"]


def test_concurrent_posts_get_unique_ids(server, control):
    with ThreadPoolExecutor(max_workers=10) as pool:  # one session per request: Session is not thread-safe
        ids = list(pool.map(lambda i: Client(server.url, PROBER_TOKEN).toot(f"parallel {i}")["id"], range(30)))
    assert len(set(ids)) == 30
    assert control.get("/_sandbox/artifacts").json()["accounts"]["vigie_prober"]["statuses"] == 30
