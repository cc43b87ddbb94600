"""The scheduler lease: one holder at a time, renewed by its holder, taken over once expired."""
from __future__ import annotations

import time

import pytest

from probes.lease import lease_hold, lease_leader, lease_release
from probes.models import SchedulerLease

pytestmark = pytest.mark.django_db


def test_the_first_scheduler_takes_the_lease_and_the_second_stands_by_until_it_expires():
    assert lease_hold("a", seconds=0.6)
    assert not lease_hold("b", seconds=0.6)
    assert lease_leader().holder == "a"
    assert lease_hold("a", seconds=0.6)  # renewed by its holder
    assert not lease_hold("b", seconds=0.6)
    time.sleep(0.7)  # a stops renewing (killed): the lease runs out and b takes it
    assert lease_leader() is None
    assert lease_hold("b", seconds=0.6)
    assert not lease_hold("a", seconds=0.6)  # a back from a stall does not lead beside b
    assert lease_leader().holder == "b"
    assert SchedulerLease.objects.count() == 1


def test_a_renewal_keeps_when_the_lease_was_taken_and_moves_expiry_on():
    assert lease_hold("a", seconds=30)
    first = SchedulerLease.objects.get()
    assert lease_hold("a", seconds=60)
    renewed = SchedulerLease.objects.get()
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at > first.expires_at


def test_a_scheduler_stopping_cleanly_hands_over_at_once():
    assert lease_hold("a", seconds=60)
    assert not lease_release("b")  # only the holder can give it up
    assert lease_release("a")
    assert lease_hold("b", seconds=60)
    assert lease_leader().holder == "b"
