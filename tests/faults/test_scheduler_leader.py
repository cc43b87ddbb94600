"""No single scheduler, for real: two `celery -A vigie beat` processes run at once, exactly one of
them (the holder of the scheduler lease, probes.lease) schedules; the leader is killed with SIGKILL
and the other takes over within two dispatch intervals, and no placement is sent twice for a slot —
read from the very messages the dispatcher put on the location's queue."""
from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings

from probes.lease import lease_leader
from probes.models import Location, SchedulerLease
from tests.conftest import make_probe
from tests.faults.figures import figure
from tests.faults.processes import processes, wait_for  # noqa: F401 (a fixture)

DISPATCH_EVERY = 2  # seconds


def leader_pid() -> int | None:
    lease = lease_leader()
    return int(lease.holder.split(":")[1]) if lease else None


def drain_runs(queue: str) -> list[tuple[int, str]]:
    """(placement id, slot) of every run the dispatchers sent to `queue`, taken off the broker."""
    from vigie.celery import app

    sent = []
    with app.connection_for_read() as connection:
        with connection.SimpleQueue(queue) as messages:
            while True:
                try:
                    message = messages.get(block=False)
                except messages.Empty:
                    return sent
                args = message.decode()[0]
                if message.headers["task"].endswith("run_batch"):
                    sent += [(placement_id, slot) for placement_id, _key, slot in args[0]]
                else:
                    sent.append((args[0], args[2]))
                message.ack()


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_one_leads_and_the_other_takes_over_within_two_intervals_when_it_is_killed(
        platform, processes, monkeypatch):  # noqa: F811
    settings.DISPATCH_EVERY_SECONDS = DISPATCH_EVERY
    lease_s = settings.SCHEDULER_LEASE_SECONDS
    env = {"VIGIE_DISPATCH_EVERY": str(DISPATCH_EVERY)}
    location = Location.objects.create(name=f"sac-{uuid.uuid4().hex[:8]}")
    for action in ("read", "post", "follow"):
        make_probe(platform, action, [location], interval_s=2)
    processes.worker(["vigie"], concurrency=2, **env)  # runs the dispatcher; nobody runs the probes
    first = processes.beat(**env)
    wait_for(lambda: leader_pid() == first.pid, timeout=60, what="the first scheduler to lead")
    second = processes.beat(**env)
    wait_for(lambda: "stands by" in processes.log(second) or "now leads" in processes.log(second), timeout=60,
             what="the second scheduler to tick")
    time.sleep(3 * DISPATCH_EVERY)  # both tick side by side: the first keeps leading, alone
    assert leader_pid() == first.pid
    assert "now leads" not in processes.log(second)
    held = SchedulerLease.objects.get()

    processes.kill(first)
    wait_for(lambda: leader_pid() == second.pid, timeout=30, what="the second scheduler to take over")
    dead = SchedulerLease.objects.get()
    # On the database's clock: from the dead leader's last renewal to the standby's taking over.
    last_renewal = held.expires_at - timedelta(seconds=lease_s)
    taken_over = dead.acquired_at - last_renewal
    figure("leading scheduler killed → standby leads", taken_over.total_seconds())
    assert taken_over <= timedelta(seconds=2 * DISPATCH_EVERY), taken_over
    assert "now leads" in processes.log(second)
    sent_by_first = drain_runs(location.queue)
    assert sent_by_first  # the first scheduler did dispatch

    # The new leader dispatches: runs keep arriving for every placement.
    time.sleep(3 * DISPATCH_EVERY)
    processes.kill(second)
    time.sleep(DISPATCH_EVERY)  # a dispatch pass already under way finishes
    sent = sent_by_first + drain_runs(location.queue)
    assert len(sent) > len(sent_by_first)
    twice = [run for run, count in Counter(sent).items() if count > 1]
    assert twice == []  # no placement sent twice for one slot, across both schedulers
