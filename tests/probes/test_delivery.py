"""The delivery probe (issue 16, point 5): a post by the prober must reach the home timeline of the
partner, who follows it. Real HTTP to the sandbox, whose fan-out worker the fault `fanout_stalled`
stops: posts accepted and readable by their author, never in a follower's timeline."""
from __future__ import annotations

import uuid

import pytest
import requests
from django.utils import timezone

from detection.models import Component, ComponentStatus, Incident
from detection.simulation import record_run
from probes.models import Account, Platform, ProbeLocation, Run
from probes.runner import run_execute
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe, sandbox_fresh, sandbox_serving


@pytest.fixture(scope="module")
def takahe_server():
    yield from sandbox_serving(compat="takahe", follow_delay_s=0.3, fanout_delay_s=0.3)


@pytest.fixture
def takahe(takahe_server):
    yield from sandbox_fresh(takahe_server)


@pytest.fixture
def takahe_platform(db, takahe):
    platform = Platform.objects.create(name="Takahe", slug="takahe", kind="mastodon", base_url=takahe.url,
                                       settle_s=1.5)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    return platform


def deliver(platform: Platform, locations) -> Run:
    probe = platform.probes.filter(action="delivery").first() or make_probe(
        platform, "delivery", locations[:1], component="Post delivery")
    placement = ProbeLocation.objects.filter(probe=probe).first()
    return run_execute(placement_id=placement.id, run_key=str(uuid.uuid4()), scheduled_for=timezone.now())


def test_the_sandbox_fans_out_after_a_delay_and_a_stalled_worker_delivers_nothing(takahe):
    prober = {"Authorization": f"Bearer {PROBER_TOKEN}"}
    partner = {"Authorization": f"Bearer {PARTNER_TOKEN}"}
    requests.post(f"{takahe.url}/api/v1/accounts/1/follow", headers=partner, timeout=5)
    takahe.fault("fanout_stalled", "post")
    status = requests.post(f"{takahe.url}/api/v1/statuses", headers=prober, timeout=5,
                           data={"status": "hello", "visibility": "unlisted"}).json()
    import time
    time.sleep(0.4)  # past the fan-out delay: only the stall keeps it back
    home = requests.get(f"{takahe.url}/api/v1/timelines/home", headers=partner, timeout=5).json()
    assert status["id"] not in [s["id"] for s in home]
    # The author still reads it, and sees it in their own home timeline.
    assert requests.get(f"{takahe.url}/api/v1/statuses/{status['id']}", headers=prober, timeout=5).status_code == 200
    own = requests.get(f"{takahe.url}/api/v1/timelines/home", headers=prober, timeout=5).json()
    assert status["id"] in [s["id"] for s in own]
    takahe.clear_faults()  # the worker resumes: the backlog is delivered
    home = requests.get(f"{takahe.url}/api/v1/timelines/home", headers=partner, timeout=5).json()
    assert status["id"] in [s["id"] for s in home]


@pytest.mark.django_db(transaction=True)
def test_a_delivered_post_is_measured_with_its_time_to_visible_and_removed(takahe, takahe_platform, locations):
    result = deliver(takahe_platform, locations)
    assert result.outcome == "success", result.error
    reads = result.evidence["delivery_reads"]
    # Fan-out is asynchronous: the first read(s) did not see it, a later one did.
    assert reads[-1]["seen"] is True and reads[0]["seen"] is False
    assert result.evidence["effective_ms"] >= result.evidence["accepted_ms"]
    assert result.evidence["partner_follow_made"] is True
    assert result.cleanup == Run.Cleanup.DONE
    assert takahe.leftovers() == 0, takahe.artifacts()
    # The standing follow is kept: the next run does not make it again.
    again = deliver(takahe_platform, locations)
    assert again.outcome == "success" and "partner_follow_made" not in again.evidence
    assert takahe.artifacts()["vigie_partner"]["follows"] == 1


@pytest.mark.django_db(transaction=True)
def test_posts_accepted_but_never_delivered_are_not_delivered_and_cleaned_up(takahe, takahe_platform, locations):
    deliver(takahe_platform, locations)  # the partner follows the prober
    takahe.fault("fanout_stalled", "*")
    result = deliver(takahe_platform, locations)
    assert result.outcome == "failure" and result.failure_class == "not_delivered", result.error
    assert result.evidence["author_reads"] is True
    assert all(read["seen"] is False for read in result.evidence["delivery_reads"])
    assert "effective_ms" not in result.evidence
    assert result.cleanup == Run.Cleanup.DONE
    assert takahe.leftovers() == 0, takahe.artifacts()


@pytest.mark.django_db(transaction=True)
def test_a_read_only_platform_is_read_only_for_the_delivery_probe_too(takahe, takahe_platform, locations):
    takahe.fault("read_only", "*")
    result = deliver(takahe_platform, locations)
    assert result.outcome == "failure" and result.failure_class == "read_only", result.error


@pytest.mark.django_db
def test_undelivered_posts_make_the_component_red_with_the_words_users_feel(platform, locations):
    probe = make_probe(platform, "delivery", locations, component="Post delivery")
    make_probe(platform, "post", locations, component="Posting")
    start = timezone.now() - timezone.timedelta(minutes=30)
    placements = list(ProbeLocation.objects.filter(probe=probe).select_related("probe", "location"))
    for i in range(8):
        for placement in placements:
            record_run(placement, start + timezone.timedelta(seconds=30 * i), failure_class="not_delivered",
                       latency_ms=5000)
    assert Component.objects.get(name="Post delivery").status == ComponentStatus.MAJOR
    incident = Incident.objects.get()
    assert incident.title == "New posts not reaching followers"
    assert incident.evidence["failure_classes"] == {"not_delivered": 2}
    from detection.texts import title_render
    assert title_render(incident.title_text, language="fr") != incident.title  # translated
