"""Outage scenarios: sandbox faults on a timeline, and what each should make Vigie say.

The same timelines drive the live system (`manage.py scenario run NAME`, which sets and clears
faults on the running sandbox) and the simulation used by the tests (`simulate_outcome`, which
answers for the sandbox what a run would meet at a given moment).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from probes.models import Action, FailureClass

WRITES = (Action.POST, Action.REPOST, Action.FOLLOW, Action.DM)


@dataclass(frozen=True)
class Fault:
    kind: str  # a sandbox fault kind: quota_exceeded, read_only, server_error, slow:<ms>, drop, accept_overlong
    action: str  # post, repost, follow, dm, read or *
    location: str | None = None


@dataclass
class Scenario:
    name: str
    description: str
    warmup_s: float  # healthy time before the faults (in seconds at scale 1)
    fault_s: float  # how long the faults last
    faults: list[Fault] = field(default_factory=list)
    # Flapping: instead of one window, each interval fails with this probability (one slot each).
    random_failure_ratio: float = 0.0
    expect: str = ""


SCENARIOS: dict[str, Scenario] = {
    "feb-2023": Scenario(
        "feb-2023", "every write refused with the daily-limit error for 20 minutes, reads fine",
        warmup_s=120, fault_s=20 * 60, faults=[Fault("quota_exceeded", a) for a in WRITES],
        expect="one incident covering the four write components, impact critical, reads operational"),
    "regional": Scenario(
        "regional", "one location cannot reach the platform for 10 minutes",
        warmup_s=120, fault_s=10 * 60, faults=[Fault("drop", "*", location="@last")],
        expect="partial outage, not major"),
    "flapping": Scenario(
        "flapping", "one run in four fails at random on posting, for 15 minutes",
        warmup_s=120, fault_s=15 * 60, faults=[Fault("server_error", Action.POST)], random_failure_ratio=0.25,
        expect="no incident"),
    "slow-posting": Scenario(
        "slow-posting", "posts take 3× the latency threshold for 5 minutes",
        warmup_s=120, fault_s=5 * 60, faults=[Fault("slow:@3x", Action.POST)],
        expect="degraded performance on Posting"),
    "overlong-accepted": Scenario(
        "overlong-accepted", "the platform accepts posts over its character limit for 5 minutes",
        warmup_s=120, fault_s=5 * 60, faults=[Fault("accept_overlong", Action.POST)],
        expect="an incident titled “Character limit not enforced”"),
}


def resolve_fault(fault: Fault, *, locations: list[str], latency_threshold_ms: int) -> Fault:
    """Fill in the placeholders: `@last` is the last location, `slow:@3x` is 3× the threshold."""
    location = sorted(locations)[-1] if fault.location == "@last" else fault.location
    kind = f"slow:{latency_threshold_ms * 3}" if fault.kind == "slow:@3x" else fault.kind
    return Fault(kind, fault.action, location)


def failing_slots(scenario: Scenario, slots: int, seed: int) -> set[int]:
    """For a random scenario: which of the fault window's interval slots fail."""
    if not scenario.random_failure_ratio:
        return set(range(slots))
    rng = random.Random(seed)
    return {i for i in range(slots) if rng.random() < scenario.random_failure_ratio}


def simulate_outcome(faults: list[Fault], *, action: str, location: str, timeout_ms: int,
                     base_latency_ms: int = 40) -> tuple[str, int]:
    """What the sandbox would answer a run of `action` at `location` under `faults`:
    (failure class or "", latency in ms). Mirrors the sandbox's precedence."""
    applying = [f for f in faults if f.action in (action, "*") and f.location in (None, location)]
    kinds = {f.kind for f in applying}
    latency = base_latency_ms + max([int(k.split(":")[1]) for k in kinds if k.startswith("slow:")] or [0])
    if latency > timeout_ms:
        return FailureClass.TIMEOUT, timeout_ms
    if "drop" in kinds:
        return FailureClass.CONNECT, latency
    if "server_error" in kinds:
        return FailureClass.SERVER_ERROR, latency
    if "read_only" in kinds and action != Action.READ:
        return FailureClass.READ_ONLY, latency
    if "quota_exceeded" in kinds and action in WRITES:
        return FailureClass.QUOTA_EXCEEDED, latency
    if action == Action.LIMITS and any(f.kind == "accept_overlong" and f.action in (Action.POST, "*")
                                       and f.location in (None, location) for f in faults):
        return FailureClass.INVARIANT, latency
    return "", latency
