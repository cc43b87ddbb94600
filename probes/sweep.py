"""The periodic sweep: Vigie's own leftovers found on the platform and put back on the cleanup ledger.

Runs clean up after themselves and failed cleanups are retried (runner.cleanup_pending), but
that only covers what the ledger knows. The sweep asks each platform what Vigie's test accounts
have there — their statuses, reblogs and follows — and anything older than the longest run that
no fixture explains (the partner's repost target, its follow of the prober) is a leftover: put on
the ledger (or reopened, if it was marked cleaned: a resurrected delete, counted as a lost
delete), counted (`Artifact.sweeps`, the /metrics counters) and removed by the cleanup
retries, which verify each delete by reading back.

A follow has no creation time to read: the first sighting puts it on the ledger dated now, and
the cleanup retries take it only once it is older than the longest run, so a follow a run has
just made (and is about to put on record itself) is never pulled from under its check.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Max
from django.utils import timezone

from platforms.adapters import UnknownAdapter, adapter_class
from platforms.adapters.base import RunContext
from platforms.errors import ProbeError
from platforms.http import HttpSeam, shared_session
from probes.models import Action, Artifact, Platform, Probe

log = logging.getLogger(__name__)
# Which probe a leftover is filed under (the ledger needs one), by kind.
KIND_ACTION = {Artifact.Kind.STATUS: Action.POST, Artifact.Kind.REBLOG: Action.REPOST,
               Artifact.Kind.FOLLOW: Action.FOLLOW, Artifact.Kind.DIRECT_MESSAGE: Action.DM}
MIN_AGE = timedelta(minutes=1)


def longest_run(platform: Platform) -> timedelta:
    """How long a run of this platform may last: action and cleanup each get the probe's timeout,
    plus the settle time; never less than a minute."""
    timeout = platform.probes.filter(enabled=True).aggregate(m=Max("timeout_s"))["m"] or 0
    return max(MIN_AGE, timedelta(seconds=2 * float(timeout) + float(platform.settle_s)))


def leftovers_sweep(now: datetime | None = None, *, older_than: timedelta | None = None) -> dict[str, int]:
    """Find each enabled platform's leftovers and put them on the ledger; returns counts
    {"found", "resurrected"} over all platforms. `older_than`: instead of each platform's longest run."""
    from probes.runner import _credentials, user_agent

    now = now or timezone.now()
    totals = {"found": 0, "resurrected": 0}
    for platform in Platform.objects.filter(enabled=True):
        try:
            cls = adapter_class(platform.kind)
        except UnknownAdapter:
            continue
        probes = {p.action: p for p in Probe.objects.filter(platform=platform).order_by("id")}
        if not cls.can_list_leftovers or not probes:
            continue
        accounts = _credentials(platform)
        if "prober" not in accounts:
            continue
        secrets = [creds.token for _, creds in accounts.values()]
        http = HttpSeam(user_agent=user_agent("sweep"), deadline=time.monotonic() + 30,
                        max_bytes=settings.VIGIE_MAX_RESPONSE_BYTES, secrets=secrets,
                        session=shared_session(platform.base_url))
        ctx = RunContext(http=http, record_artifact=lambda a: None, run_key=str(uuid.uuid4()))
        partner = accounts.get("partner")
        adapter = cls(base_url=platform.base_url, prober=accounts["prober"][1],
                      partner=partner[1] if partner else None, ctx=ctx)
        try:
            found = adapter.leftovers()
        except ProbeError as exc:
            log.info("leftover sweep of %s: cannot list (%s)", platform.slug, exc.message)
            continue
        oldest_allowed = now - (older_than if older_than is not None else longest_run(platform))
        fallback = next(iter(probes.values()))
        for artifact, made in found:
            if made is not None and made > oldest_allowed:
                continue  # a run's own, perhaps still going
            account = accounts[artifact.role][0]
            probe = probes.get(KIND_ACTION.get(artifact.kind, ""), fallback)
            row = Artifact.objects.filter(account=account, kind=artifact.kind, remote_id=artifact.remote_id).first()
            dated = made or now
            if row is None:
                Artifact.objects.get_or_create(account=account, kind=artifact.kind, remote_id=artifact.remote_id,
                                               defaults={"run_key": uuid.uuid4(), "probe": probe, "created_at": dated,
                                                         "next_attempt_at": now, "sweeps": 1})
                totals["found"] += 1
            elif row.cleaned_at is not None and row.cleaned_at <= oldest_allowed:
                # Marked cleaned, and there again: a status this way is a delete the platform lost.
                resurrected = artifact.kind in (Artifact.Kind.STATUS, Artifact.Kind.DIRECT_MESSAGE)
                fields = {"cleaned_at": None, "next_attempt_at": now, "attempts": 0, "sweeps": F("sweeps") + 1,
                          "created_at": min(dated, now), "run_key": uuid.uuid4()}
                if resurrected:
                    fields.update(deletes_lost=F("deletes_lost") + 1, delete_lost_at=now)
                # Only if no run took it over meanwhile (same owner, still marked cleaned).
                if Artifact.objects.filter(id=row.id, run_key=row.run_key, cleaned_at=row.cleaned_at).update(**fields):
                    totals["found"] += 1
                    totals["resurrected"] += resurrected
        if found:
            log.info("leftover sweep of %s: %s", platform.slug, totals)
    return totals
