"""The Mastodon adapter over real HTTP against the sandbox in each compatibility mode: answering
like Mastodon, and like Takahē (400 for an over-long post, no rate-limit headers, a reblog answered
with the original status marked reblogged, HTML 404 pages). Every action works and cleans up."""
from __future__ import annotations

import uuid

import pytest
import requests
from django.utils import timezone

from probes.models import Account, Platform, ProbeLocation, Run
from probes.runner import run_execute
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, LiveSandbox, make_probe, sandbox_fresh, sandbox_serving

ACTIONS = ["post", "repost", "follow", "dm", "read", "limits"]


@pytest.fixture(scope="module")
def takahe_server():
    yield from sandbox_serving(compat="takahe")


@pytest.fixture(params=["mastodon", "takahe"])
def compat(request, sandbox_server, takahe_server):
    for live in sandbox_fresh(sandbox_server if request.param == "mastodon" else takahe_server):
        yield request.param, live


@pytest.fixture
def compat_platform(db, compat):
    mode, live = compat
    platform = Platform.objects.create(name=mode, slug=mode, kind="mastodon", base_url=live.url)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    return platform


def run(platform: Platform, locations, action: str) -> Run:
    probe = make_probe(platform, action, locations[:1]) if not platform.probes.filter(action=action).exists() \
        else platform.probes.get(action=action)
    placement = ProbeLocation.objects.get(probe=probe)
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


def rate_limit_headers(live: LiveSandbox) -> dict:
    answer = requests.get(f"{live.url}/api/v1/accounts/verify_credentials", timeout=5,
                          headers={"Authorization": f"Bearer {PROBER_TOKEN}"})
    return {k: v for k, v in answer.headers.items() if k.lower().startswith("x-ratelimit")}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_succeeds_and_cleans_up_in_each_mode(compat, compat_platform, locations, action):
    mode, live = compat
    result = run(compat_platform, locations, action)
    assert result.outcome == "success", (mode, result.error)
    assert result.cleanup in (Run.Cleanup.DONE, Run.Cleanup.NONE)
    assert live.leftovers() == 0, live.artifacts()
    # The modes really differ where Takahē does.
    assert bool(rate_limit_headers(live)) == (mode == "mastodon")


@pytest.mark.django_db(transaction=True)
def test_the_modes_answer_differently_where_takahe_does(compat, compat_platform):
    mode, live = compat
    auth = {"Authorization": f"Bearer {PROBER_TOKEN}"}
    long = requests.post(f"{live.url}/api/v1/statuses", data={"status": "x" * 600}, headers=auth, timeout=5)
    assert long.status_code == (422 if mode == "mastodon" else 400)
    missing = requests.get(f"{live.url}/api/v1/statuses/123", headers=auth, timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/json" if mode == "mastodon" else "text/html")
    target = requests.post(f"{live.url}/api/v1/statuses", data={"status": "target"}, timeout=5,
                           headers={"Authorization": f"Bearer {PARTNER_TOKEN}"}).json()
    reblog = requests.post(f"{live.url}/api/v1/statuses/{target['id']}/reblog", headers=auth, timeout=5).json()
    if mode == "mastodon":
        assert reblog["reblog"]["id"] == target["id"]
    else:
        assert reblog["id"] == target["id"] and reblog["reblogged"] is True and reblog.get("reblog") is None


@pytest.mark.django_db(transaction=True)
def test_an_accepted_over_long_post_is_an_invariant_failure_in_each_mode(compat, compat_platform, locations):
    _, live = compat
    live.fault("accept_overlong", "post")
    result = run(compat_platform, locations, "limits")
    assert result.failure_class == "invariant"
    assert live.leftovers() == 0, live.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_deleted_repost_target_is_made_again_in_each_mode(compat, compat_platform, locations):
    _, live = compat
    assert run(compat_platform, locations, "repost").outcome == "success"
    partner = Account.objects.get(platform=compat_platform, role="partner")
    gone = requests.delete(f"{live.url}/api/v1/statuses/{partner.fixture_id}", timeout=5,
                           headers={"Authorization": f"Bearer {PARTNER_TOKEN}"})
    assert gone.status_code == 200
    again = run(compat_platform, locations, "repost")
    assert again.outcome == "success", again.error
    assert Account.objects.get(id=partner.id).fixture_id != partner.fixture_id
    assert live.leftovers() == 0, live.artifacts()
