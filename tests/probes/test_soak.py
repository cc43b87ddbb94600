"""The acceptance soak of issue 16, small (bench/soak.py runs it with 1,000 runs): every action
against the sandbox in Takahē compat mode with random faults, invariant failures and worker
kills leaves zero artifacts and one repost target per account. Real HTTP to the sandbox."""
from __future__ import annotations

import os

import pytest
import requests

from bench.soak import soak
from probes.models import Account, Platform
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, LiveSandbox, make_probe, sandbox_serving

RUNS = int(os.environ.get("VIGIE_SOAK_RUNS", "40"))
SEED = int(os.environ.get("VIGIE_SOAK_SEED", "16"))


@pytest.fixture
def takahe():
    for server in sandbox_serving(compat="takahe", follow_delay_s=0.2, fanout_delay_s=0.1):
        yield LiveSandbox(server)


@pytest.mark.django_db(transaction=True)
def test_runs_with_random_faults_and_kills_leave_nothing_behind(takahe, locations):
    platform = Platform.objects.create(name="Takahe", slug="takahe", kind="mastodon", base_url=takahe.url)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    for action in ("post", "repost", "follow", "dm", "read", "limits", "delivery"):
        make_probe(platform, action, locations, timeout_s=5)
    outcomes = soak(sandbox=takahe, platform=platform, runs=RUNS, seed=SEED, say=print)
    print(f"soak of {RUNS} runs (seed {SEED}): {outcomes}")
    assert takahe.leftovers() == 0, takahe.artifacts()
    artifacts = takahe.artifacts()
    assert artifacts["vigie_partner"]["statuses"] <= 1 and artifacts["vigie_prober"]["statuses"] == 0
    partner = Account.objects.get(platform=platform, role="partner")
    if artifacts["vigie_partner"]["statuses"]:  # the one repost target is the one on record
        found = requests.get(f"{takahe.url}/api/v1/statuses/{partner.fixture_id}", timeout=5,
                             headers={"Authorization": f"Bearer {PARTNER_TOKEN}"})
        assert found.status_code == 200
    if RUNS >= 40:
        assert outcomes.get("killed", 0) >= 1 and len(outcomes) >= 4  # faults and kills did happen
