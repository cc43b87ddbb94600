"""The periodic leftover sweep (issue 16, point 2): Vigie's own leftovers found on the platform
(its accounts' statuses, reblogs and follows, fixtures excepted) are put back on the ledger,
removed, and counted; deletes the platform answered and lost are deleted again and counted, and
on-call is told. Real HTTP to the sandbox."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests
from django.test import Client
from django.utils import timezone

from detection.budget import problems_recheck
from detection.models import OwnProblem
from probes.models import Account, Artifact, ProbeLocation, Run
from probes.runner import cleanup_pending, run_execute
from probes.sweep import leftovers_sweep
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe

PROBER = {"Authorization": f"Bearer {PROBER_TOKEN}"}
PARTNER = {"Authorization": f"Bearer {PARTNER_TOKEN}"}


def post(url: str, headers: dict, text: str = "left behind") -> str:
    return requests.post(f"{url}/api/v1/statuses", headers=headers, timeout=5,
                         data={"status": text, "visibility": "unlisted"}).json()["id"]


@pytest.mark.django_db(transaction=True)
def test_the_sweep_removes_leftovers_and_keeps_the_fixtures(sandbox, platform, locations):
    make_probe(platform, "post", locations[:1])
    target = post(sandbox.url, PARTNER, "the repost target")
    Account.objects.filter(platform=platform, role="partner").update(fixture_id=target)
    requests.post(f"{sandbox.url}/api/v1/accounts/1/follow", headers=PARTNER, timeout=5)  # delivery's follower
    # What crashed runs left behind: a post, a reblog of the target, a follow, a post by the partner.
    post(sandbox.url, PROBER)
    requests.post(f"{sandbox.url}/api/v1/statuses/{target}/reblog", headers=PROBER, timeout=5)
    requests.post(f"{sandbox.url}/api/v1/accounts/2/follow", headers=PROBER, timeout=5)
    post(sandbox.url, PARTNER, "a repost target that lost a race")
    assert sandbox.leftovers() == 4

    found = leftovers_sweep(older_than=timedelta(0))
    assert found == {"found": 4, "resurrected": 0}
    assert cleanup_pending(min_age=timedelta(0)) == 4
    assert sandbox.leftovers() == 0, sandbox.artifacts()
    artifacts = sandbox.artifacts()
    assert artifacts["vigie_partner"]["follows"] == 1 and artifacts["vigie_partner"]["statuses"] == 1  # fixtures
    # Found again by nothing: a second pass finds nothing.
    assert leftovers_sweep(older_than=timedelta(0)) == {"found": 0, "resurrected": 0}
    metrics = Client().get("/metrics").content.decode()
    assert 'vigie_leftovers_swept_total{platform="sandbox"} 4.0' in metrics


@pytest.mark.django_db(transaction=True)
def test_a_young_post_is_left_to_its_run(sandbox, platform, locations):
    make_probe(platform, "post", locations[:1])
    post(sandbox.url, PROBER)
    assert leftovers_sweep() == {"found": 0, "resurrected": 0}  # younger than the longest run


@pytest.mark.django_db(transaction=True)
def test_a_lost_delete_is_deleted_again_counted_and_told_to_on_call(sandbox, platform, locations):
    probe = make_probe(platform, "post", locations[:1])
    sandbox.fault("delete_lost", "post")
    run = run_execute(placement_id=ProbeLocation.objects.get(probe=probe).id, run_key=str(uuid.uuid4()),
                      scheduled_for=timezone.now())
    assert run.outcome == "success" and run.cleanup == Run.Cleanup.PENDING
    row = Artifact.objects.get()
    assert row.deletes_lost == 1 and row.cleaned_at is None
    problems_recheck(timezone.now())
    assert OwnProblem.objects.filter(kind=OwnProblem.Kind.LOST_DELETES, subject="sandbox",
                                     resolved_at__isnull=True).exists()
    assert row.next_attempt_at <= timezone.now() + timedelta(seconds=31)  # tried again soon
    sandbox.clear_faults()
    Artifact.objects.update(next_attempt_at=timezone.now())  # the retry comes due
    assert cleanup_pending(min_age=timedelta(0)) == 1  # deleted again, verified gone
    assert sandbox.leftovers() == 0
    metrics = Client().get("/metrics").content.decode()
    assert 'vigie_lost_deletes_total{platform="sandbox"} 1.0' in metrics
    # An hour without a lost delete closes the notice.
    problems_recheck(timezone.now() + timedelta(hours=2))
    assert not OwnProblem.objects.filter(kind=OwnProblem.Kind.LOST_DELETES, resolved_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_post_marked_cleaned_but_back_is_a_resurrected_delete_removed_again(sandbox, platform, locations):
    probe = make_probe(platform, "post", locations[:1])
    status_id = post(sandbox.url, PROBER)
    prober = Account.objects.get(platform=platform, role="prober")
    long_ago = timezone.now() - timedelta(hours=1)
    Artifact.objects.create(run_key=uuid.uuid4(), probe=probe, account=prober, kind="status", remote_id=status_id,
                            created_at=long_ago, cleaned_at=long_ago)
    assert leftovers_sweep(older_than=timedelta(0)) == {"found": 1, "resurrected": 1}
    row = Artifact.objects.get()
    assert row.cleaned_at is None and row.deletes_lost == 1 and row.sweeps == 1
    assert cleanup_pending(min_age=timedelta(0)) == 1
    assert sandbox.leftovers() == 0


@pytest.mark.django_db(transaction=True)
def test_the_sweep_follows_the_pages_of_an_account_with_more_leftovers_than_a_page(sandbox, platform, locations,
                                                                                  monkeypatch):
    """More leftovers than one page (40 statuses): the sweep reads on through the Link header's
    next page, up to its bound per pass; the next pass finds the rest."""
    from platforms.adapters.mastodon import MastodonAdapter

    make_probe(platform, "post", locations[:1])
    target = post(sandbox.url, PARTNER, "the repost target")
    Account.objects.filter(platform=platform, role="partner").update(fixture_id=target)
    requests.post(f"{sandbox.url}/api/v1/statuses/{target}/reblog", headers=PROBER, timeout=5)  # the oldest
    for i in range(94):
        post(sandbox.url, PROBER, f"left behind {i}")
    assert sandbox.leftovers() == 95

    answer = requests.get(f"{sandbox.url}/api/v1/accounts/1/statuses?limit=40", headers=PROBER, timeout=5)
    assert 'rel="next"' in answer.headers["Link"]  # the way the sandbox pages, as Mastodon does
    monkeypatch.setattr(MastodonAdapter, "sweep_max_pages", 2)
    assert leftovers_sweep(older_than=timedelta(0)) == {"found": 80, "resurrected": 0}  # two pages, no more
    assert Artifact.objects.filter(kind=Artifact.Kind.REBLOG).count() == 0  # beyond the bound: next pass
    assert cleanup_pending(min_age=timedelta(0)) + cleanup_pending(min_age=timedelta(0)) == 80  # 50 a batch
    assert sandbox.leftovers() == 15
    monkeypatch.undo()
    assert leftovers_sweep(older_than=timedelta(0)) == {"found": 15, "resurrected": 0}
    assert Artifact.objects.filter(kind=Artifact.Kind.REBLOG, cleaned_at__isnull=True).count() == 1
    assert cleanup_pending(min_age=timedelta(0)) == 15
    assert sandbox.leftovers() == 0, sandbox.artifacts()


def test_only_the_next_pages_cursor_is_taken_from_a_link_header():
    """The next page is asked of the platform's own URL: a Link elsewhere gives its max_id, never its host."""
    from platforms.adapters.mastodon import _next_max_id

    link = ('<https://elsewhere.example/api/v1/accounts/1/statuses?limit=40&max_id=117>; rel="next", '
            '<https://elsewhere.example/api/v1/accounts/1/statuses?min_id=200>; rel="prev"')
    assert _next_max_id(link) == "117"
    assert _next_max_id('<https://x.example/?min_id=3>; rel="prev"') is None
    assert _next_max_id("") is None
