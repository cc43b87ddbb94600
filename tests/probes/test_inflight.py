"""The runs of one message performed side by side (probes.inflight, runner.runs_execute), over one
kept connection per platform (http.shared_session), with their deadlines kept by one thread
(http.Deadlines) — against the live sandbox, as a worker does."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from probes import inflight, recorder, tasks
from probes.dispatch import Due
from platforms.errors import ProbeError
from platforms.http import Deadlines, HttpSeam, shared_session
from probes.models import Location, Outcome, Probe, ProbeLocation, Run
from probes.runner import runs_execute
from tests.conftest import make_probe

SLOW_MS = 400


@pytest.fixture
def worker(monkeypatch):
    """This process acts as a worker: runs side by side in the pool, stored in batches."""
    monkeypatch.setattr(inflight, "_enabled", True)
    monkeypatch.setattr(recorder, "_enabled", True)
    monkeypatch.setattr(recorder, "_recorder", None)
    yield
    connection.close()


def reads(platform, locations, count: int) -> list[ProbeLocation]:
    probes = [make_probe(platform, "read", locations[:1]) if i == 0 else
              Probe.objects.create(name=f"Read {i}", slug=f"read-{i}", platform=platform, action="read", interval_s=30,
                                   timeout_s=5) for i in range(count)]
    for probe in probes[1:]:
        ProbeLocation.objects.create(probe=probe, location=locations[0])
    return list(ProbeLocation.objects.filter(probe__in=probes).order_by("id"))


def message(placements, *, slot=None) -> list[tuple[int, str, object]]:
    slot = slot or timezone.now()
    return [(placement.id, str(uuid.uuid4()), slot) for placement in placements]


@pytest.mark.django_db(transaction=True)
def test_the_runs_of_a_message_are_performed_side_by_side_and_each_stored_once(worker, platform, locations, sandbox):
    placements = reads(platform, locations, 8)
    sandbox.fault(f"slow:{SLOW_MS}", "read")
    runs = message(placements)
    began = time.monotonic()
    recorded = runs_execute(runs)
    elapsed = time.monotonic() - began
    assert [str(run.key) for run in recorded] == [key for _, key, _ in runs]  # in the message's order
    assert all(run.pk and run.outcome == Outcome.SUCCESS and run.latency_ms >= SLOW_MS for run in recorded)
    # One after the other they would take 8 × 0.4 s; side by side, about one of them (plus the
    # recorder's batching window).
    assert elapsed < 4 * SLOW_MS / 1000, elapsed
    assert recorder._recorder.batches == 1  # stored together
    # The same message delivered again (its worker died before acknowledging it) records nothing new.
    assert [run.pk for run in runs_execute(runs)] == [run.pk for run in recorded]
    assert Run.objects.count() == 8


@pytest.mark.django_db(transaction=True)
def test_a_run_past_its_interval_or_of_a_deleted_placement_is_dropped_and_said(worker, platform, locations, sandbox,
                                                                               caplog):
    fresh, late, gone = reads(platform, locations, 3)
    runs = message([fresh]) + message([late], slot=timezone.now() - timedelta(seconds=31)) + message([gone])
    ProbeLocation.objects.filter(id=gone.id).delete()
    with caplog.at_level(logging.WARNING, logger="probes.runner"):
        recorded = runs_execute(runs)
    assert [run.probe_id for run in recorded] == [fresh.probe_id]
    assert f"run {runs[1][1]} of placement {late.id}" in caplog.text and "expired" in caplog.text
    assert f"run {runs[2][1]} not performed: its probe location {gone.id} no longer exists" in caplog.text
    assert Run.objects.count() == 1


class Peer:
    """A local HTTP/1.1 server: answers each GET with `{"ok": true}` and a cookie, or, when told
    to, drips its body a byte every 0.1 s. Notes the client port of every request (one per
    connection)."""

    def __init__(self):
        import http.server

        peer = self
        self.ports: list[int] = []
        self.drip = False

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                peer.ports.append(self.client_address[1])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Set-Cookie", "sid=secret-of-one-run; Path=/")
                if not peer.drip:
                    body = b'{"ok": true}'
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(100):  # each byte within the socket timeout: only the total deadline cuts it
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.1)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def peer():
    peer = Peer()
    yield peer
    peer.server.shutdown()


def seam(session, seconds: float = 5) -> HttpSeam:
    return HttpSeam(user_agent="Vigie/test", deadline=time.monotonic() + seconds, max_bytes=100_000, session=session)


def test_runs_against_a_platform_reuse_its_connection_and_keep_no_cookies(peer):
    session = shared_session(peer.url)
    assert shared_session(peer.url + "api/v1/x") is session  # one per origin
    for _ in range(6):
        assert seam(session).request("GET", peer.url).status == 200
    assert len(peer.ports) == 6 and len(set(peer.ports)) == 1  # six runs, one connection
    assert len(session.cookies) == 0  # one run's cookie is never sent with another's request


def test_a_kept_connection_is_cut_at_the_deadline_of_the_run_using_it(peer):
    session = shared_session(peer.url)
    assert seam(session).request("GET", peer.url).status == 200
    peer.drip = True
    began = time.monotonic()
    with pytest.raises(ProbeError) as failure:
        seam(session, seconds=1.0).request("GET", peer.url)
    assert time.monotonic() - began < 2.0
    assert failure.value.failure_class == "timeout"
    assert len(set(peer.ports)) == 1  # the second run was on the first one's connection
    peer.drip = False
    assert seam(session).request("GET", peer.url).status == 200  # the cut connection is not reused


def test_deadlines_act_in_their_order_and_a_cancelled_one_never_acts():
    deadlines = Deadlines()
    acted: list[str] = []
    now = time.monotonic()
    deadlines.at(now + 0.2, lambda: acted.append("second"))
    cancelled = deadlines.at(now + 0.05, lambda: acted.append("cancelled"))
    deadlines.at(now + 0.1, lambda: acted.append("first"))
    deadlines.cancel(cancelled)
    time.sleep(0.4)
    assert acted == ["first", "second"]


@pytest.mark.django_db
def test_a_dispatch_pass_sends_one_message_per_location(platform, monkeypatch):
    locations = [Location.objects.create(name=name) for name in ("sacramento", "atlanta")]
    probes = [Probe.objects.create(name=f"P{i}", slug=f"p-{i}", platform=platform, action="read", interval_s=30,
                                   timeout_s=5 + i) for i in range(5)]
    now = timezone.now()
    due = [Due(ProbeLocation.objects.create(probe=probe, location=location, next_run_at=now), str(uuid.uuid4()), now)
           for probe in probes for location in locations]
    sent = []
    monkeypatch.setattr(tasks.run_batch, "apply_async", lambda **kwargs: sent.append(kwargs))
    tasks._send_runs(due)
    assert sorted(message["queue"] for message in sent) == ["probes.atlanta", "probes.sacramento"]
    for message in sent:
        (runs,) = message["args"]
        assert len(runs) == 5 and len({key for _, key, _ in runs}) == 5
        assert message["expires"] == now + timedelta(seconds=30)
        assert message["time_limit"] > 9 * 2  # the slowest probe's timeout, action and cleanup


@pytest.mark.django_db
def test_a_message_is_never_larger_than_the_runs_a_worker_keeps_in_flight(platform, settings, monkeypatch):
    settings.VIGIE_RUNS_IN_FLIGHT = 4
    location = Location.objects.create(name="sacramento")
    now = timezone.now()
    due = []
    for i in range(10):
        probe = Probe.objects.create(name=f"P{i}", slug=f"p-{i}", platform=platform, action="read", interval_s=30)
        due.append(Due(ProbeLocation.objects.create(probe=probe, location=location, next_run_at=now),
                       str(uuid.uuid4()), now))
    sent = []
    monkeypatch.setattr(tasks.run_batch, "apply_async", lambda **kwargs: sent.append(kwargs))
    tasks._send_runs(due)
    assert [len(message["args"][0]) for message in sent] == [4, 4, 2]
