"""Executing one run: the adapter performs the action, cleans up, and the run is recorded once."""
from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from probes import drops, inflight, recorder, spool
from platforms.adapters import UnknownAdapter, adapter_class
from platforms.adapters.base import BaseAdapter, CreatedArtifact, Credentials, RunContext
from platforms.crypto import UNREADABLE
from platforms.errors import ProbeError
from platforms.http import HttpSeam, redact, shared_session
from probes.models import Account, Artifact, DropReason, FailureClass, Outcome, Platform, ProbeLocation, Run, url_origin

log = logging.getLogger(__name__)
VERSION = "0.1"
# Failed cleanups are retried with growing pauses, capped: a monitor must not leave spam behind.
CLEANUP_BACKOFF_MAX = timedelta(hours=1)


def user_agent(location: str) -> str:
    """Names the location so that platform logs (and the sandbox's faults) can tell probes apart."""
    return f"Vigie/{VERSION} (probe; location={location}; +{settings.VIGIE_PUBLIC_URL})"


def _credentials(platform: Platform) -> dict[str, tuple[Account, Credentials]]:
    return _credentials_of(platform.accounts.all())


def _credentials_of(accounts) -> dict[str, tuple[Account, Credentials]]:
    """Role → (account, the credentials an adapter gets): a run's own, which it may change."""
    return {
        a.role: (a, Credentials(role=a.role, username=a.username, token=a.token, remote_id=a.remote_id,
                                fixture_id=a.fixture_id, session=a.session if a.session != UNREADABLE else ""))
        for a in accounts
    }


def account_sessions_save(*, facts: dict, accounts: dict[str, tuple[Account, Credentials]]) -> None:
    """Keep the sessions an adapter made or refreshed (encrypted at rest). Popped from the facts
    first: a session is a secret and must never reach the run's evidence."""
    for role, session in facts.pop("learnt_sessions", {}).items():
        Account.objects.filter(id=accounts[role][0].id).update(session=session)


def _adapter(platform: Platform, accounts: dict[str, tuple[Account, Credentials]], ctx: RunContext) -> BaseAdapter:
    try:
        cls = adapter_class(platform.kind)
    except UnknownAdapter as exc:
        raise ProbeError(FailureClass.UNEXPECTED, str(exc), permanent=True) from None
    prober = accounts.get("prober")
    if prober is None and cls.needs_prober:
        raise ProbeError(FailureClass.AUTH, f"platform {platform.slug!r} has no prober account", permanent=True)
    for account, creds in accounts.values():
        if creds.token == UNREADABLE:
            raise ProbeError(FailureClass.AUTH, f"the stored token of {account.username} cannot be decrypted: "
                             "VIGIE_ENCRYPTION_KEY changed since it was saved; set the token again", permanent=True)
        if not account.token_usable_for(platform.base_url):
            # Tokens are bound to the origin they were stored for: a base_url moved elsewhere (by an
            # API token with write scope, say) must never receive them (docs/security.md).
            where = url_origin(platform.base_url)
            reason = (f"was stored for {account.token_origin}, and base_url now points at {where}"
                      if account.token and account.token_origin else "was dropped when base_url or kind changed")
            raise ProbeError(FailureClass.AUTH, f"the token of {account.username} {reason}: it is never sent to "
                             "another origin; set the token again for this base_url", permanent=True)
    partner = accounts.get("partner")
    prober_creds = prober[1] if prober else Credentials(role="prober", username="", token="")
    return cls(base_url=platform.base_url, prober=prober_creds, partner=partner[1] if partner else None, ctx=ctx)


def run_execute(*, placement_id: int, run_key: str, scheduled_for: datetime) -> Run:
    """Perform one run of a placed probe and record it; a run key already recorded is not redone."""
    existing = Run.objects.filter(key=run_key).first() or spool.spooled_run(run_key)
    if existing is not None:
        return existing
    placement = ProbeLocation.objects.select_related("probe__platform", "location").get(id=placement_id)
    return run_perform(placement=placement, accounts=list(placement.probe.platform.accounts.all()), run_key=run_key,
                       scheduled_for=scheduled_for)


def runs_execute(runs: list[tuple[int, str, datetime]]) -> list[Run]:
    """Perform the runs of one message (a location's runs due at one moment) side by side, and
    record each; returns the message's runs on record, in its order. What they need from the database is read once for all
    (three queries); keys already recorded are not redone. A run whose slot is an interval past
    by now (the message waited that long) is dropped, and said so, as an expired message is."""
    keys = [str(key) for _, key, _ in runs]
    recorded = {str(run.key): run for run in Run.objects.filter(key__in=keys)}
    pending = [(placement_id, str(key), at) for placement_id, key, at in runs if str(key) not in recorded]
    placements = ProbeLocation.objects.select_related("probe__platform", "location").in_bulk(
        {placement_id for placement_id, _, _ in pending})
    accounts = defaultdict(list)
    for account in Account.objects.filter(platform_id__in={p.probe.platform_id for p in placements.values()}):
        accounts[account.platform_id].append(account)
    now = timezone.now()
    # A redelivered message may have runs in this machine's spool, performed already; one look at
    # the spool's folder spares every run its own when it is empty, as it nearly always is.
    perform = _perform_unless_spooled if spool.spool_pending() else _perform
    jobs, expired = [], []
    for placement_id, key, at in pending:
        placement = placements.get(placement_id)
        if placement is None:
            log.warning("run %s not performed: its probe location %s no longer exists", key, placement_id)
            continue
        if now >= at + timedelta(seconds=placement.probe.interval_s):
            log.warning("run %s of placement %s (scheduled for %s) expired before a worker could run it; not run",
                        key, placement_id, at.isoformat())
            expired.append((placement.probe_id, placement.location_id, DropReason.EXPIRED, at))
            continue
        jobs.append(functools.partial(perform, placement=placement,
                                      accounts=accounts[placement.probe.platform_id], run_key=key, scheduled_for=at))
    drops.runs_dropped_add(expired)  # a fact, counted per probe and reason
    # The threads are free for other runs once theirs is performed; the runs are stored together.
    done = inflight.perform_all(jobs)
    stored = iter(recorder.store_all([outcome for outcome in done if isinstance(outcome, dict)]))
    for outcome in done:
        run = outcome if isinstance(outcome, Run) else next(stored)
        recorded[str(run.key)] = run
    return [recorded[key] for key in keys if key in recorded]


def _perform_unless_spooled(*, run_key: str, **run) -> dict | Run:
    # A redelivered message: a run of it may wait in this machine's spool, performed already.
    return spool.spooled_run(run_key) or _perform(run_key=run_key, **run)


def run_perform(*, placement: ProbeLocation, accounts: list[Account], run_key: str, scheduled_for: datetime) -> Run:
    """Perform one run of a placed probe (its probe, platform and location loaded) as the
    `accounts` of its platform, and record it."""
    return recorder.store(_perform(placement=placement, accounts=accounts, run_key=run_key,
                                   scheduled_for=scheduled_for))


def _perform(*, placement: ProbeLocation, accounts: list[Account], run_key: str, scheduled_for: datetime) -> dict:
    """Perform one run and clean up after it; the run as it is to be stored (run_payload)."""
    probe, platform, location = placement.probe, placement.probe.platform, placement.location
    accounts = _credentials_of(accounts)
    secrets = [creds.token for _, creds in accounts.values() if creds.token != UNREADABLE]
    http = HttpSeam(
        user_agent=user_agent(location.name),
        deadline=time.monotonic() + probe.timeout_s,
        max_bytes=settings.VIGIE_MAX_RESPONSE_BYTES,
        secrets=secrets,
        session=shared_session(platform.base_url),
    )
    created: list[tuple[CreatedArtifact, Artifact]] = []

    def record_artifact(artifact: CreatedArtifact) -> None:
        row = artifact_record(run_key=run_key, probe_id=probe.id, account=accounts[artifact.role][0], artifact=artifact)
        created.append((artifact, row))

    def contended(artifact: CreatedArtifact) -> bool:
        """Another run had this artifact in flight when this one made it (the row was still to be
        cleaned, by that run), or took the row over since (made it again, and may undo it)."""
        for made, row in created:
            if (made.kind, made.remote_id, made.role) != (artifact.kind, artifact.remote_id, artifact.role):
                continue
            if getattr(row, "contended", False) or getattr(row, "unsynced", False):
                return bool(getattr(row, "contended", False))
            try:
                owner = Artifact.objects.filter(id=row.id).values_list("run_key", flat=True).first()
            except spool.DB_DOWN:
                return False
            return owner is not None and str(owner) != str(run_key)
        return False

    ctx = RunContext(http=http, record_artifact=record_artifact, run_key=str(run_key), script=probe.script,
                     settle_s=platform.settle_s, contended=contended)
    started_at = timezone.now()
    began = time.monotonic()
    failure: ProbeError | None = None
    adapter: BaseAdapter | None = None
    try:
        adapter = _adapter(platform, accounts, ctx)
        adapter.execute(probe.action)
    except ProbeError as exc:
        failure = exc
    except Exception as exc:  # an adapter bug must still leave a run on record
        log.exception("adapter %s crashed on %s", platform.kind, probe.slug)
        failure = ProbeError(FailureClass.UNEXPECTED, f"adapter error: {type(exc).__name__}")
    latency_ms = int((time.monotonic() - began) * 1000)
    action_steps = [asdict(s) for s in ctx.steps]
    if adapter is not None:
        _fixtures_claim(ctx, accounts, record_artifact)

    # Cleanup gets its own time budget: a slow action must not leave its artifacts behind.
    ctx.steps = []
    http.deadline = time.monotonic() + probe.timeout_s
    cleanup = Run.Cleanup.NONE
    if created and adapter is not None:
        cleanup = Run.Cleanup.DONE
        for artifact, row in reversed(created):  # undo in reverse: the reblog before its status
            if not artifact_cleanup(row, adapter=adapter, artifact=artifact, secrets=secrets):
                cleanup = Run.Cleanup.PENDING
    elif created:
        cleanup = Run.Cleanup.PENDING

    try:
        for role, remote_id in ctx.facts.pop("learnt_remote_ids", {}).items():
            Account.objects.filter(id=accounts[role][0].id).update(remote_id=remote_id)
        account_sessions_save(facts=ctx.facts, accounts=accounts)
    except spool.DB_DOWN:  # learnt again next run; the run itself is kept below (probes.spool)
        spool.connection_reset()
        ctx.facts.pop("learnt_sessions", None)  # a secret: never into the evidence

    evidence = _evidence(failure, ctx.facts, secrets)
    evidence["cleanup_steps"] = [asdict(s) for s in ctx.steps]
    return run_payload(
        key=run_key, placement=placement, scheduled_for=scheduled_for, started_at=started_at,
        latency_ms=latency_ms, failure=failure, steps=action_steps, evidence=evidence, cleanup=cleanup,
        secrets=secrets, artifacts=[row for _, row in created],
    )


def _fixtures_claim(ctx: RunContext, accounts: dict[str, tuple[Account, Credentials]], record_artifact) -> None:
    """Keep the fixtures (repost targets) this run made, one per account whatever the number of
    locations and workers: the first run to store its fixture wins, by a conditional UPDATE of the
    account row (it replaces only the value this run started from); a run that lost the race puts
    its own fixture on record as an artifact, and its cleanup deletes it. Before cleanup, so the
    same run removes what it must not keep."""
    for role, fixture_id in ctx.facts.pop("learnt_fixture_ids", {}).items():
        account, _ = accounts[role]
        try:
            won = Account.objects.filter(id=account.id, fixture_id=account.fixture_id).update(fixture_id=fixture_id)
        except spool.DB_DOWN:  # learnt again next run: meanwhile this one is removed as a leftover
            spool.connection_reset()
            won = 0
        if not won:
            ctx.facts["fixture_race_lost"] = True
            record_artifact(CreatedArtifact(Artifact.Kind.STATUS, fixture_id, role))


def _evidence(failure: ProbeError | None, facts: dict, secrets: list[str]) -> dict:
    evidence: dict = dict(facts)
    if failure is None:
        return evidence
    evidence["failure_class"] = failure.failure_class
    result = failure.result
    if result is not None:
        evidence.update(
            status_code=result.status,
            request=f"{result.method} {result.path}",
            platform_error=redact(result.error_text(limit=2000), secrets)[:300],
            rate_limit=result.rate_limit(),
            truncated=result.truncated,
        )
    return evidence


def storable(value):
    """`value` with NUL characters replaced: a platform's answer may hold them (a body of zeros),
    and PostgreSQL refuses them in text and JSON, which would lose the whole run."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def run_record(**run) -> Run:
    """Store a run once (the key is unique), move the placement's latest result, evaluate: in a
    worker with the other runs finishing at the same time (probes.recorder).

    The run already happened, so an unreachable database does not lose it: it waits in the spool
    (probes.spool) and is stored, in order, once the database is back, together with the ledger
    writes of `artifacts` that failed during the run."""
    return recorder.store(run_payload(**run))


def run_payload(*, key: str, placement: ProbeLocation, scheduled_for: datetime, started_at: datetime,
                latency_ms: int, failure: ProbeError | None, steps: list[dict], evidence: dict, cleanup: str,
                secrets: list[str], artifacts: list[Artifact] = ()) -> dict:
    """A finished run as it is stored, spooled and batched: plain JSON, secrets redacted."""
    return {
        "key": str(key), "probe_id": placement.probe_id, "location_id": placement.location_id,
        "scheduled_for": scheduled_for.isoformat(), "started_at": started_at.isoformat(),
        "finished_at": timezone.now().isoformat(), "latency_ms": latency_ms,
        "outcome": Outcome.SUCCESS if failure is None else Outcome.FAILURE,
        "failure_class": failure.failure_class if failure else "",
        "error": storable(redact(failure.message, secrets)[:500]) if failure else "",
        "steps": storable(steps), "evidence": storable(evidence), "cleanup": cleanup,
        "artifacts": [spool.artifact_state(row) for row in artifacts if getattr(row, "unsynced", False)],
    }


def artifact_record(*, run_key: str, probe_id: int, account: Account, artifact: CreatedArtifact) -> Artifact:
    """Put an artifact on record, owned by this run. A follow or a repost has the same remote id
    every run, so its row may exist from an earlier run, even marked cleaned: it exists again now,
    and the row goes back to "to be cleaned", owned by the run that made it last.

    With the database unreachable the row is kept in memory, marked `unsynced`: the run is cleaned
    up as usual and `run_record` puts the artifact on record with the run (probes.spool)."""
    try:
        row, created = Artifact.objects.get_or_create(
            account=account, kind=artifact.kind, remote_id=artifact.remote_id,
            defaults={"run_key": run_key, "probe_id": probe_id},
        )
    except spool.DB_DOWN:
        if connection.in_atomic_block:
            raise
        spool.connection_reset()
        log.warning("database unreachable: %s %s is recorded with run %s", artifact.kind, artifact.remote_id, run_key)
        row = Artifact(run_key=run_key, probe_id=probe_id, account=account, kind=artifact.kind,
                       remote_id=artifact.remote_id)
        row.unsynced = True
        return row
    if not created:
        # Still to be cleaned, by another run: that run has the same artifact in flight (two
        # locations' follows of one partner overlapping), and its undo may take this one's away.
        row.contended = row.cleaned_at is None and str(row.run_key) != str(run_key)
        now = timezone.now()
        Artifact.objects.filter(id=row.id).update(run_key=run_key, probe_id=probe_id, created_at=now, cleaned_at=None,
                                                  attempts=0, last_error="", next_attempt_at=now)
        row.run_key, row.probe_id, row.created_at, row.cleaned_at = run_key, probe_id, now, None
        row.attempts, row.next_attempt_at = 0, now
    return row


def artifact_cleanup(row: Artifact, *, adapter: BaseAdapter, artifact: CreatedArtifact, secrets: list[str]) -> bool:
    """Undo one artifact; on failure schedule another attempt later. True when it is gone.

    Updates are conditional on the row's owner: if a later run made the same artifact again
    meanwhile, that run owns the row and its own cleanup decides, so an earlier undo that
    raced with the re-creation cannot mark the new one cleaned."""
    lost_before = adapter.ctx.facts.get("deletes_lost", 0)
    try:
        adapter.undo(artifact)
    except ProbeError as exc:
        attempts = row.attempts + 1
        pause = min(timedelta(seconds=30 * 2 ** min(attempts, 10)), CLEANUP_BACKOFF_MAX)
        lost = adapter.ctx.facts.get("deletes_lost", 0) > lost_before
        if lost:
            # The platform answered the delete and kept the post: deleted again at the next attempt,
            # sooner than a failed call would be, and counted (a platform that loses deletes is on-call's).
            pause = timedelta(seconds=30)
            _deletes_lost_count(row)
        _ledger_update(row, attempts=attempts, last_error=redact(exc.message, secrets)[:500], cleaned_at=None,
                       next_attempt_at=timezone.now() + pause)
        return False
    _ledger_update(row, cleaned_at=timezone.now(), attempts=row.attempts + 1, last_error="")
    return True


def _deletes_lost_count(row: Artifact) -> None:
    """One more delete the platform answered and lost, on the artifact's row (whoever owns it)."""
    row.deletes_lost += 1
    if getattr(row, "unsynced", False) or row.id is None:
        return
    try:
        Artifact.objects.filter(id=row.id).update(deletes_lost=F("deletes_lost") + 1, delete_lost_at=timezone.now())
    except spool.DB_DOWN:
        if connection.in_atomic_block:
            raise
        spool.connection_reset()


def _ledger_update(row: Artifact, **fields) -> None:
    """Write a cleanup result to the ledger row, if this run still owns it. With the database
    unreachable (or the row never recorded), the result stays on the row for `run_record`."""
    for name, value in fields.items():
        setattr(row, name, value)
    if getattr(row, "unsynced", False):
        return
    try:
        Artifact.objects.filter(id=row.id, run_key=row.run_key).update(**fields)
    except spool.DB_DOWN:
        if connection.in_atomic_block:
            raise
        spool.connection_reset()
        row.unsynced = True


def cleanup_pending(*, limit: int = 50, min_age: timedelta = timedelta(minutes=1)) -> int:
    """Retry the cleanups that failed. Each artifact is claimed by a conditional UPDATE first,
    so two workers running this at once never undo the same artifact twice. Returns the count cleaned."""
    now = timezone.now()
    due = list(
        Artifact.objects.filter(cleaned_at__isnull=True, next_attempt_at__lte=now, created_at__lte=now - min_age)
        .select_related("account__platform", "probe")
        .order_by("next_attempt_at")[:limit]
    )
    cleaned = 0
    for row in due:
        claimed = Artifact.objects.filter(id=row.id, next_attempt_at=row.next_attempt_at, cleaned_at__isnull=True) \
            .update(next_attempt_at=now + timedelta(minutes=5))
        if claimed != 1:
            continue
        platform = row.account.platform
        accounts = _credentials(platform)
        secrets = [creds.token for _, creds in accounts.values()]
        http = HttpSeam(user_agent=user_agent("cleanup"), deadline=time.monotonic() + 20,
                        max_bytes=settings.VIGIE_MAX_RESPONSE_BYTES, secrets=secrets,
                        session=shared_session(platform.base_url))
        ctx = RunContext(http=http, record_artifact=lambda a: None, run_key=str(row.run_key), script=row.probe.script)
        try:
            adapter = _adapter(platform, accounts, ctx)
        except ProbeError as exc:
            Artifact.objects.filter(id=row.id).update(last_error=exc.message[:500])
            continue
        artifact = CreatedArtifact(row.kind, row.remote_id, row.account.role)
        if artifact_cleanup(row, adapter=adapter, artifact=artifact, secrets=secrets):
            cleaned += 1
        account_sessions_save(facts=ctx.facts, accounts=accounts)
    return cleaned
