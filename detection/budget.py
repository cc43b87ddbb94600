"""Vigie's own writes against each platform's documented limits.

A quota or rate-limit refusal while Vigie's own usage is far below the limit is the platform's
doing (the Feb-2023 pattern); one that Vigie's own probing explains is a probe budget problem for
on-call, not a platform incident. The same numbers let `config check` refuse a schedule that would
exceed the limits before it runs.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Sum

from platforms.adapters import UnknownAdapter, adapter_class
from platforms.adapters.base import WriteLimit
from probes.models import Account, Artifact, FailureClass, Platform, Run
from detection.models import OwnProblem

# Own usage at or above this share of a limit explains a refusal.
SELF_INFLICTED_SHARE = 0.8


def platform_limits(kind: str, declared: dict | None) -> tuple[WriteLimit, ...]:
    """The write limits that apply to a platform: those it declares (`Platform.write_limits`,
    {family: [limit, period_s]}, {} for none), else its kind's documented ones."""
    try:
        documented = adapter_class(kind).write_limits
    except UnknownAdapter:
        return ()
    if declared is None:
        return documented
    return tuple(WriteLimit(r.family, int(declared[r.family][0]), timedelta(seconds=float(declared[r.family][1])),
                            r.kinds, r.counts, r.cost)
                 for r in documented if r.family in declared)


def limits_said(kind: str, declared: dict | None) -> str:
    """Which limits apply and why, as `config check` says it."""
    limits = platform_limits(kind, declared)
    where = "declared by the platform" if declared is not None else f"documented for kind {kind}"
    if not limits:
        return f"no write limits ({where})"
    return ", ".join(f"{r.family} {r.limit} per {_human(r.period)}" for r in limits) + f" ({where})"


# Writes kept on purpose, so never on the artifact ledger, but writes all the same: a run's fact
# (in its evidence) that it made one -> the account role that wrote and the kind written. The
# delivery probe's partner follows the prober once and keeps it (remade only if it is lost).
STANDING_WRITES = {"partner_follow_made": ("partner", Artifact.Kind.FOLLOW)}


def _standing_writes(account: Account, rule: WriteLimit, since: datetime) -> int:
    if rule.counts not in ("created", "points"):
        return 0
    made = 0
    for fact, (role, kind) in STANDING_WRITES.items():
        if account.role == role and kind in rule.kinds:
            made += Run.objects.filter(probe__platform_id=account.platform_id, finished_at__gte=since,
                                       **{f"evidence__{fact}": True}).count()
    return made * (rule.cost[0] if rule.counts == "points" else 1)


def own_usage(account: Account, limits: tuple[WriteLimit, ...], now: datetime) -> list[tuple[WriteLimit, int]]:
    usage = []
    for rule in limits:
        since = now - rule.period
        rows = Artifact.objects.filter(account=account, kind__in=rule.kinds)
        if rule.counts == "created":
            used = rows.filter(created_at__gte=since).count()
        elif rule.counts == "points":
            used = (rows.filter(created_at__gte=since).count() * rule.cost[0]
                    + rows.filter(cleaned_at__gte=since).count() * rule.cost[1])
        else:
            used = rows.filter(cleaned_at__gte=since).count()
        usage.append((rule, used + _standing_writes(account, rule, since)))
    return usage


def run_is_self_inflicted(run: Run, platform: Platform) -> bool:
    """True (and on-call told) when the run's quota or rate refusal is explained by Vigie's own
    writes: the limits of the families the refused action writes, for the accounts it writes with."""
    from detection.problems import problem_open

    if run.outcome == "failure" and isinstance(run.evidence, dict) and run.evidence.get("self_inflicted") == "collision":
        # Two runs of one account collided (a duplicate concurrent follow refused by the server's
        # unique constraint): Vigie's doing, told to on-call, never evidence against the platform.
        problem_open(OwnProblem.Kind.PROBE_COLLISION, platform.slug,
                     f"two runs of one {platform.name} account acted at the same moment and the server refused "
                     f"one ({run.failure_class}, run {run.key}): check that locations sharing an account are "
                     "staggered (docs/how-vigie-decides.md)")
        return True
    if run.failure_class not in (FailureClass.QUOTA_EXCEEDED, FailureClass.RATE_LIMITED):
        return False
    explained = _explanations(platform, actions=[run.probe.action], now=run.finished_at)
    if not explained:
        return False
    run.evidence = {**run.evidence, "self_inflicted": True, "own_usage": explained}
    Run.objects.filter(id=run.id).update(evidence=run.evidence)
    problem_open(OwnProblem.Kind.PROBE_BUDGET, platform.slug,
                 f"{run.failure_class} on {platform.name} explained by Vigie's own writes: " + "; ".join(explained))
    return True


def _explanations(platform: Platform, *, actions: list[str], now: datetime) -> list[str]:
    try:
        adapter = adapter_class(platform.kind)
    except UnknownAdapter:
        return []
    accounts = {a.role: a for a in platform.accounts.all()}
    explained = []
    for action in actions:
        writers = {role: set(families) for role, families in adapter.writes_per_run.get(action, {}).items()}
        for role, families in adapter.writes_once.get(action, {}).items():
            writers.setdefault(role, set()).update(families)
        for role, families in writers.items():
            account = accounts.get(role)
            rules = tuple(r for r in platform_limits(platform.kind, platform.write_limits) if r.family in families)
            if account is None or not rules:
                continue
            for rule, used in own_usage(account, rules, now):
                if used >= rule.limit * SELF_INFLICTED_SHARE:
                    explained.append(f"{account.username}: {used} of {rule.limit} {rule.family} per "
                                     f"{_human(rule.period)}")
    return sorted(set(explained))


def problems_recheck(now: datetime) -> None:
    """Close probe budget problems once Vigie's own usage is back under the share."""
    for problem in OwnProblem.objects.filter(kind=OwnProblem.Kind.PROBE_BUDGET, resolved_at__isnull=True):
        platform = Platform.objects.filter(slug=problem.subject).first()
        actions = list(platform.probes.values_list("action", flat=True).distinct()) if platform else []
        if platform is None or not _explanations(platform, actions=actions, now=now):
            OwnProblem.objects.filter(id=problem.id).update(resolved_at=now)
    # A collision is an event, not a state to measure: told for an hour, then closed; another one
    # opens the problem again.
    OwnProblem.objects.filter(kind=OwnProblem.Kind.PROBE_COLLISION, resolved_at__isnull=True,
                              opened_at__lte=now - timedelta(hours=1)).update(resolved_at=now)
    # A platform that lost a delete within the hour (the post still readable after a 200) is worth
    # an on-call notice; none lost for an hour, it is closed.
    from detection.problems import problem_open, problem_resolve

    recent = now - timedelta(hours=1)
    losing = dict(Artifact.objects.filter(delete_lost_at__gte=recent).values_list("account__platform__slug")
                  .annotate(n=Sum("deletes_lost")).order_by())
    for slug, lost in losing.items():
        problem_open(OwnProblem.Kind.LOST_DELETES, slug,
                     f"the platform answered deletes and kept the posts ({lost} lost so far); each is deleted again "
                     "and counted (vigie_lost_deletes)")
    for slug in OwnProblem.objects.filter(kind=OwnProblem.Kind.LOST_DELETES, resolved_at__isnull=True) \
            .exclude(subject__in=list(losing)).values_list("subject", flat=True):
        problem_resolve(OwnProblem.Kind.LOST_DELETES, slug)


def schedule_problems(platform_kind: str, probes: list[dict], *, write_limits: dict | None = None) -> list[str]:
    """What a planned schedule would write per account and family, against the platform's limits
    (`write_limits` as Platform.write_limits). `probes` items: {"slug", "action", "interval", "locations": [..]}."""
    try:
        adapter = adapter_class(platform_kind)
    except UnknownAdapter:
        return []
    limits = platform_limits(platform_kind, write_limits)
    planned: dict[tuple[str, str], float] = {}
    for rule in limits:
        for probe in probes:
            per_run = adapter.writes_per_run.get(probe["action"], {})
            for role, families in per_run.items():
                writes = families.get(rule.family, 0)
                if writes:
                    runs = rule.period.total_seconds() / probe["interval"] * max(1, len(probe["locations"]))
                    planned[(role, rule.family)] = planned.get((role, rule.family), 0) + writes * runs
        # Writes made once and kept (the delivery probe's standing follow): one per period, however
        # many runs and locations.
        once: dict[tuple[str, str], int] = {}
        for probe in probes:
            for role, families in adapter.writes_once.get(probe["action"], {}).items():
                if families.get(rule.family):
                    once[(role, rule.family)] = max(once.get((role, rule.family), 0), families[rule.family])
        for key, writes in once.items():
            planned[key] = planned.get(key, 0) + writes
    problems = []
    for rule in limits:
        for (role, family), count in sorted(planned.items()):
            # Refused from the share on: above it, the platform's own refusals would be taken
            # for Vigie's and an outage like February 2023's would be missed.
            if family == rule.family and count >= rule.limit * SELF_INFLICTED_SHARE:
                problems.append(f"the {role} account would make {count:.0f} writes per {_human(rule.period)} "
                                f"counted as {family}, {SELF_INFLICTED_SHARE:.0%} or more of the platform's limit of "
                                f"{rule.limit}: lengthen intervals or use fewer locations")
    return problems


def _human(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "24 h" if hours == 24 else f"{hours} h"
    return f"{seconds // 60} min"

