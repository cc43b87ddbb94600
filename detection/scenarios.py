"""Outage scenarios: sandbox faults on a timeline, and what each should make Vigie say.

The same timelines drive the live system (`manage.py scenario run NAME`, which sets and clears
faults on the running sandbox) and the simulation used by the tests (`simulate_outcome`, which
answers for the sandbox what a run would meet at a given moment).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

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
    # When the sandbox's official status page acknowledges the faults, after they start (scaled
    # like every duration); None: the page's own setting (sandbox/official.py).
    official_ack_s: float | None = None
    # Noise before the faults: in each warmup interval, these faults at random (this ratio), never
    # more than `noise_max_streak` intervals in a row, and always the last intervals before the
    # faults (so the noisy placement is failing when the real outage starts).
    noise: list[Fault] = field(default_factory=list)
    noise_ratio: float = 0.0
    noise_max_streak: int = 3
    # The sandbox mode the scenario is about (`sandbox serve --compat`, `manage.py up --compat`):
    # `scenario run` refuses a sandbox running another mode.
    compat: str = "mastodon"
    # What Vigie must say: how many public incidents (None: not checked), and, for a scenario
    # that is about Vigie's own side, the own problem it must open.
    expect_incidents: int | None = 1
    expect_problem: str = ""


SCENARIOS: dict[str, Scenario] = {
    "feb-2023": Scenario(
        "feb-2023", "every write refused with the daily-limit error for 20 minutes, reads fine",
        warmup_s=120, fault_s=20 * 60, faults=[Fault("quota_exceeded", a) for a in WRITES],
        # In February 2023 the platform's own page stayed silent for hours; here it speaks after 5 minutes.
        official_ack_s=5 * 60,
        expect="one incident covering the four write components, impact critical, reads operational, "
               "acknowledged by the platform's official page after 5 minutes"),
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
    "fanout-stalled": Scenario(
        "fanout-stalled", "the fan-out worker stops for 10 minutes: posts accepted, never in followers' timelines",
        warmup_s=120, fault_s=10 * 60, faults=[Fault("fanout_stalled", Action.POST)],
        expect="one incident on Post delivery, class not_delivered, titled “New posts not reaching followers”; "
               "the other components operational"),
    "flapping-then-outage": Scenario(
        "flapping-then-outage", "following's connection is cut now and then for 10 minutes, then every write "
                                "is refused (read-only) for 5 minutes",
        # The noise is of another class family than the outage (connect, not refused): a write's 5xx
        # while reads work is itself judged read_only (refusal_class), so 5xx noise would be the
        # same failure as the outage, and rightly date it.
        warmup_s=10 * 60, fault_s=5 * 60, faults=[Fault("read_only", a) for a in WRITES],
        noise=[Fault("drop", Action.FOLLOW)], noise_ratio=0.5, noise_max_streak=3,
        expect="one incident on the four writes, read-only, starting at the first read-only run (not at the "
               "noise before it), its duration within one interval of the outage"),
    "takahe-follow": Scenario(
        "takahe-follow", "a healthy Takahē-like server for 10 minutes: follows answered pending and effective a "
                         "second later, posts fanned out by a worker, no rate-limit headers",
        warmup_s=60, fault_s=10 * 60, faults=[], compat="takahe", expect_incidents=0,
        expect="no incident, every component operational"),
    "read-only-500": Scenario(
        "read-only-500", "a Takahē-like server refuses every write with a 500 HTML page for 5 minutes, reads fine",
        warmup_s=120, fault_s=5 * 60, faults=[Fault("read_only", a) for a in WRITES], compat="takahe",
        expect="one incident on the four writes and Post delivery, class read_only, titled “platform read-only”; "
               "Timeline operational"),
    "delete-lost": Scenario(
        "delete-lost", "a Takahē-like server answers deletes of posts and messages with 200 and keeps the posts, "
                       "for 5 minutes",
        warmup_s=120, fault_s=5 * 60, faults=[Fault("delete_lost", "*")], compat="takahe",
        expect_incidents=0, expect_problem="lost_deletes",
        expect="no public incident (every probe still does what users do), the on-call problem “The platform "
               "loses deletes”, and no post left behind once deletes work again"),
}


def resolve_fault(fault: Fault, *, locations: list[str], latency_threshold_ms: int) -> Fault:
    """Fill in the placeholders: `@last` is the last location, `slow:@3x` is 3× the threshold."""
    location = sorted(locations)[-1] if fault.location == "@last" else fault.location
    kind = f"slow:{latency_threshold_ms * 3}" if fault.kind == "slow:@3x" else fault.kind
    return Fault(kind, fault.action, location)


def noise_slots(scenario: Scenario, slots: int, seed: int) -> set[int]:
    """Which of the warmup's `slots` intervals carry the scenario's noise: at random, at most
    `noise_max_streak` in a row, ending with two noisy intervals right before the faults."""
    if not scenario.noise or slots <= 0:
        return set()
    rng = random.Random(seed)
    chosen, streak = set(), 0
    for i in range(slots):
        if streak < scenario.noise_max_streak and rng.random() < scenario.noise_ratio:
            chosen.add(i)
            streak += 1
        else:
            streak = 0
    tail = min(2, scenario.noise_max_streak, slots)
    chosen.discard(slots - tail - 1)  # the tail is a streak of its own, within the cap
    return (chosen - set(range(slots - tail, slots))) | set(range(slots - tail, slots))


def failing_slots(scenario: Scenario, slots: int, seed: int) -> set[int]:
    """For a random scenario: which of the fault window's interval slots fail."""
    if not scenario.random_failure_ratio:
        return set(range(slots))
    rng = random.Random(seed)
    return {i for i in range(slots) if rng.random() < scenario.random_failure_ratio}


def simulate_outcome(faults: list[Fault], *, action: str, location: str, timeout_ms: int,
                     base_latency_ms: int = 40) -> tuple[str, int]:
    """What the sandbox would answer a run of `action` at `location` under `faults`:
    (failure class or "", latency in ms). Mirrors the sandbox's precedence; the limits probe's
    over-long post is a (followers-only) post, so post-scoped faults reach it."""
    # The limits probe's over-long post and the delivery probe's post are posts: post-scoped faults reach them.
    scope = Action.POST if action in (Action.LIMITS, Action.DELIVERY) else action
    kinds = {f.kind for f in faults if f.action in (scope, "*") and f.location in (None, location)}
    latency = base_latency_ms + max([int(k.split(":")[1]) for k in kinds if k.startswith("slow:")] or [0])
    if latency > timeout_ms:
        return FailureClass.TIMEOUT, timeout_ms
    if "drop" in kinds:
        return FailureClass.CONNECT, latency
    if "server_error" in kinds:
        # The adapters' one judge of a refused write (platforms.adapters.base.refusal_class): a
        # write's 5xx while the diagnostic read works is read_only. That read (verify_credentials)
        # belongs to no action, so only faults on every action ("*") reach it.
        diagnostic = {f.kind for f in faults if f.action == "*" and f.location in (None, location)}
        if action != Action.READ and not diagnostic & {"server_error", "drop"}:
            return FailureClass.READ_ONLY, latency
        return FailureClass.SERVER_ERROR, latency
    if action == Action.LIMITS:
        if kinds & {"read_only", "quota_exceeded"}:
            return "", latency  # refused anyway: the limit held, untested
        return (FailureClass.INVARIANT if "accept_overlong" in kinds else ""), latency
    if action == Action.DELIVERY and "fanout_stalled" in kinds and not kinds & {"read_only", "quota_exceeded"}:
        return FailureClass.NOT_DELIVERED, latency
    if "read_only" in kinds and action != Action.READ:
        return FailureClass.READ_ONLY, latency
    if "quota_exceeded" in kinds and action in (*WRITES, Action.DELIVERY):
        return FailureClass.QUOTA_EXCEEDED, latency
    return "", latency


# --- playing a scenario against the running system ------------------------------------------------

@dataclass
class Played:
    started: datetime
    fault_from: datetime
    fault_until: datetime


class SandboxControl:
    """The running sandbox's control endpoint (faults on and off)."""

    def __init__(self, url: str, token: str) -> None:
        import requests

        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def set(self, fault: Fault, duration_s: float | None = None, official_ack_s: float | None = None) -> None:
        body = {"kind": fault.kind, "action": fault.action}
        if fault.location:
            body["location"] = fault.location
        if duration_s:
            body["duration_s"] = duration_s
        if official_ack_s is not None:
            body["official_ack_s"] = official_ack_s
        response = self.session.post(f"{self.url}/_sandbox/faults", json=body, timeout=10)
        if response.status_code != 201:
            raise RuntimeError(f"the sandbox refused fault {body}: {response.status_code} {response.text[:200]}")

    def clear(self) -> None:
        self.session.delete(f"{self.url}/_sandbox/faults", timeout=10).raise_for_status()

    def compat(self) -> str:
        """The running sandbox's mode (mastodon, takahe, mastodon-locked)."""
        response = self.session.get(f"{self.url}/_sandbox/faults", timeout=10)
        response.raise_for_status()
        return response.json().get("compat", "mastodon")

    def leftovers(self) -> int:
        """What Vigie's accounts have on the platform, less the fixtures kept on purpose: one repost
        target per account that has one on record, and the partner's standing follow of the prober."""
        from probes.models import Account

        response = self.session.get(f"{self.url}/_sandbox/artifacts", timeout=10)
        response.raise_for_status()
        accounts = response.json()["accounts"]
        total = sum(sum(counts.values()) for counts in accounts.values())
        kept = min(accounts.get("vigie_partner", {}).get("follows", 0), 1)
        for username in Account.objects.filter(platform__base_url__startswith=self.url).exclude(
                fixture_id="").values_list("username", flat=True).distinct():
            kept += min(accounts.get(username, {}).get("statuses", 0), 1)
        return total - kept


def scenario_play(scenario: Scenario, *, control: SandboxControl, scale: float, interval_s: float,
                  say=print, sleep=None, seed: int | None = None) -> Played:
    """Set and clear the scenario's faults on the running sandbox, on its timeline scaled by `scale`.
    Faults start and end half an interval after a run slot, so that both edges of the outage are
    measured the same way and the measured duration can be compared with the injected one."""
    import time as _time

    from django.utils import timezone

    from probes.models import Location, ProbeLocation

    sleep = sleep or _time.sleep
    locations = list(Location.objects.filter(placements__probe__enabled=True).distinct().values_list("name", flat=True))
    threshold = (ProbeLocation.objects.filter(probe__enabled=True, probe__action=Action.POST)
                 .values_list("probe__latency_threshold_ms", flat=True).first() or 2000)
    faults = [resolve_fault(f, locations=locations, latency_threshold_ms=threshold) for f in scenario.faults]
    started = timezone.now()
    control.clear()
    say(f"{started:%H:%M:%S} scenario {scenario.name}: {scenario.description} (scale {scale:g}, "
        f"interval {interval_s:g} s)")
    if scenario.noise:
        sleep(_until_mid_slot(0, interval_s))
        slots = int(scenario.warmup_s * scale // interval_s)
        noisy = noise_slots(scenario, slots, seed if seed is not None else random.randrange(1 << 30))
        say(f"{timezone.now():%H:%M:%S} noise: {len(noisy)} of {slots} intervals before the faults")
        noise = [resolve_fault(f, locations=locations, latency_threshold_ms=threshold) for f in scenario.noise]
        for slot in range(slots):
            if slot in noisy:
                for fault in noise:
                    control.set(fault, duration_s=interval_s * 0.9)
            sleep(interval_s)
    else:
        sleep(_until_mid_slot(scenario.warmup_s * scale, interval_s))
    fault_from = timezone.now()
    fault_s = scenario.fault_s * scale
    if scenario.random_failure_ratio:
        slots = int(fault_s // interval_s)
        failing = failing_slots(scenario, slots, seed if seed is not None else random.randrange(1 << 30))
        say(f"{fault_from:%H:%M:%S} {len(failing)} of {slots} intervals will fail at random")
        for slot in range(slots):
            if slot in failing:
                for fault in faults:
                    control.set(fault, duration_s=interval_s * 0.9)
            sleep(interval_s)
    else:
        ack_s = None if scenario.official_ack_s is None else round(scenario.official_ack_s * scale, 3)
        for fault in faults:
            control.set(fault, official_ack_s=ack_s)
            say(f"{fault_from:%H:%M:%S} fault {fault.kind} on {fault.action}"
                + (f" at {fault.location}" if fault.location else ""))
        if ack_s is not None:
            say(f"{fault_from:%H:%M:%S} the official status page acknowledges {ack_s:g} s after the faults start")
        sleep(_round_to_slots(fault_s, interval_s))
    control.clear()
    fault_until = timezone.now()
    say(f"{fault_until:%H:%M:%S} faults cleared after {(fault_until - fault_from).total_seconds():.1f} s")
    return Played(started, fault_from, fault_until)


def _until_mid_slot(seconds: float, interval_s: float) -> float:
    """Wait at least `seconds`, ending half an interval after a slot of the probes' grid."""
    from django.utils import timezone

    from probes.models import ProbeLocation

    grid = ProbeLocation.objects.filter(probe__enabled=True).order_by("next_run_at").values_list(
        "next_run_at", flat=True).first()
    if grid is None:
        return seconds
    now = timezone.now()
    target = now.timestamp() + seconds
    phase = (target - grid.timestamp() - interval_s / 2) % interval_s
    return seconds + (interval_s - phase if phase else 0)


def _round_to_slots(seconds: float, interval_s: float) -> float:
    return max(interval_s, round(seconds / interval_s) * interval_s)


def scenario_report(played: Played) -> list[dict]:
    """What the scenario caused: each incident (or, with none, the components' worst statuses)."""
    from detection.models import ComponentStatusChange, Incident

    rows = []
    injected = (played.fault_until - played.fault_from).total_seconds()
    for incident in Incident.objects.filter(started_at__gte=played.started).order_by("started_at"):
        links = incident.incidentcomponent_set.select_related("component").order_by("component__position")
        rows.append({
            "incident": incident.public_id, "title": incident.title, "impact": incident.effective_impact,
            "components": {link.component.name: link.worst_status for link in links},
            "started_at": incident.started_at, "detected_at": incident.detected_at,
            "resolved_at": incident.resolved_at,
            "mttd_s": incident.time_to_detect.total_seconds(),
            "duration_s": incident.duration.total_seconds() if incident.duration else None,
            "uncertainty_s": incident.duration_uncertainty_s, "injected_s": injected,
        })
    if not rows:
        changes = ComponentStatusChange.objects.filter(changed_at__gte=played.started).select_related("component")
        worst: dict[str, str] = {}
        order = ["unknown", "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"]
        for change in changes:
            name = change.component.name
            if order.index(change.new_status) > order.index(worst.get(name, "operational")):
                worst[name] = change.new_status
        rows.append({"incident": None, "components": worst, "injected_s": injected})
    return rows
