"""Incidents from component status: opened from evidence, correlated per platform, with a timeline.

One open automatic incident per platform (a unique constraint backs it): components of the
platform that fail while it is open join it, so writes failing together are one incident. The
title says what users feel, from the failing actions and failure classes.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from detection.events import announce, incident_updated, public_change
from detection.texts import component_names, text_english, title_render
from probes.models import Account, Action, FailureClass, PlacementState, Platform, ProbeLocation, Run
from detection.models import (
    Component, ComponentStatus, Impact, Incident, IncidentComponent, IncidentStatus, IncidentUpdate,
    OUTAGE_STATUSES, STATUS_SEVERITY,
)

SEVERITY = STATUS_SEVERITY
IMPACT = {ComponentStatus.DEGRADED: Impact.MINOR, ComponentStatus.PARTIAL: Impact.MAJOR,
          ComponentStatus.MAJOR: Impact.CRITICAL}
WRITE_ACTIONS = (Action.POST, Action.REPOST, Action.FOLLOW, Action.DM)
# English only, for on-call (oncall_words); the public texts take theirs from detection.texts.
CLASS_WORDS = {
    FailureClass.TIMEOUT: "requests time out", FailureClass.CONNECT: "the platform cannot be reached",
    FailureClass.SERVER_ERROR: "server errors", FailureClass.RATE_LIMITED: "requests rate-limited",
    FailureClass.QUOTA_EXCEEDED: "writes refused with a daily-limit error",
    FailureClass.READ_ONLY: "writes refused, reads work", FailureClass.AUTH: "the test account is refused",
    FailureClass.REJECTED: "requests rejected", FailureClass.INVARIANT: "wrong results accepted",
    FailureClass.UNEXPECTED: "unexpected responses", FailureClass.BAD_RESPONSE: "malformed responses",
    FailureClass.NOT_DELIVERED: "new posts not reaching followers",
}


def _affected(incident: Incident, platform: Platform) -> tuple[list[Component], list[ProbeLocation]]:
    components = list(incident.components.all()) if incident.pk else []
    placements = list(ProbeLocation.objects.filter(probe__platform=platform, probe__enabled=True,
                                                   probe__components__in=components)
                      .select_related("probe", "location").distinct())
    return components, placements


def _in_trouble(component: Component) -> bool:
    return component.status in OUTAGE_STATUSES or (component.status == ComponentStatus.DEGRADED
                                                   and component.incident_on_degraded)


def _outage_components(platform: Platform) -> list[Component]:
    components = Component.objects.filter(probes__platform=platform, probes__enabled=True).distinct()
    return [c for c in components if _in_trouble(c)]


def platforms_needing_reconcile(platform_ids: list[int]) -> set[int]:
    """Of these platforms, those where incidents_reconcile has something to do: an automatic
    incident is open, or a component is in trouble. Two queries for any number of platforms."""
    open_ = set(Incident.objects.filter(platform_id__in=platform_ids, automatic=True, resolved_at__isnull=True)
                .values_list("platform_id", flat=True))
    trouble = Q(status__in=OUTAGE_STATUSES) | Q(status=ComponentStatus.DEGRADED, incident_on_degraded=True)
    troubled = set(Component.objects.filter(trouble, probes__platform_id__in=platform_ids, probes__enabled=True)
                   .values_list("probes__platform_id", flat=True))
    return open_ | troubled


def _recovered(incident: Incident, components: list[Component], placements: list[ProbeLocation]) -> bool:
    """Resolution needs measured recovery: every component out of trouble by its runs — not put
    under maintenance, and no location that failed in this incident now silent."""
    if any(_in_trouble(c) or c.status == ComponentStatus.MAINTENANCE for c in components):
        return False
    return not any(p.state == PlacementState.UNKNOWN and p.last_failure_at and p.last_failure_at >= incident.started_at
                   for p in placements)


def _confirmed(components: list[Component]) -> bool:
    """An automatic incident opens once an outage is confirmed: some placement has failed
    `failure_threshold + VIGIE_INCIDENT_CONFIRM_RUNS` runs in a row (flapping ones never get
    there), or a component opted into incidents for degraded performance is degraded."""
    extra = settings.VIGIE_INCIDENT_CONFIRM_RUNS
    for component in components:
        if component.status == ComponentStatus.DEGRADED:
            return True
        for p in ProbeLocation.objects.filter(probe__components=component, probe__enabled=True,
                                              state=PlacementState.FAILING).select_related("probe"):
            if p.consecutive_failures >= p.probe.failure_threshold + extra:
                return True
    return False


def incident_title(platform: Platform, components: list[Component], failing: list[ProbeLocation]) -> str:
    """What users feel, from the evidence, in English (the stored title)."""
    return title_render(incident_title_text(platform, components, failing), language="en")


def incident_title_text(platform: Platform, components: list[Component], failing: list[ProbeLocation]) -> dict:
    """The title as a key and parameters (detection.texts), so each page renders it in its language."""
    actions = {p.probe.action for p in failing}
    classes = Counter(p.last_failure_class for p in failing if p.last_failure_class)
    dominant = classes.most_common(1)[0][0] if classes else ""
    platform_actions = set(platform.probes.filter(enabled=True).values_list("action", flat=True))
    writes_here = [a for a in WRITE_ACTIONS if a in platform_actions]
    reads_fine = Action.READ in platform_actions and Action.READ not in actions
    # The title follows the class: "read-only" only when the runs say the writes were refused
    # (read_only, or a quota refusing every write); writes crashing are said to crash.
    refused = dominant in (FailureClass.READ_ONLY, FailureClass.QUOTA_EXCEEDED)
    if len(writes_here) >= 2 and set(writes_here) <= actions and reads_fine and refused:
        return {"key": "read_only", "params": {"actions": [str(a) for a in writes_here],
                                                "quota": dominant == FailureClass.QUOTA_EXCEEDED}}
    if actions == {Action.LIMITS} and dominant == FailureClass.INVARIANT:
        return {"key": "limit_not_enforced", "params": {}}
    if actions == {Action.DELIVERY} and dominant == FailureClass.NOT_DELIVERED:
        # Posts accepted, nobody sees them: what users feel, not which probe saw it.
        return {"key": "not_delivered", "params": {}}
    every = Component.objects.filter(probes__platform=platform, probes__enabled=True).distinct().count()
    worst = max((c.status for c in components), key=lambda s: SEVERITY.get(s, 0), default=ComponentStatus.PARTIAL)
    locations = sorted({p.location.name for p in failing})
    all_locations = set(ProbeLocation.objects.filter(probe__platform=platform, probe__enabled=True)
                        .values_list("location__name", flat=True))
    return {"key": "failing", "params": {
        "components": component_names(sorted(components, key=lambda c: c.position)),
        "platform": platform.name, "everything": len(components) > 2 and len(components) == every,
        "degraded": worst == ComponentStatus.DEGRADED,
        "locations": locations if failing and len(locations) < len(all_locations) else [],
        "class": str(dominant) if dominant in CLASS_WORDS else ""}}


def _evidence(failing: list[ProbeLocation]) -> dict:
    classes = Counter(p.last_failure_class for p in failing if p.last_failure_class)
    latest = (Run.objects.filter(probe__in={p.probe_id for p in failing}, outcome="failure")
              .order_by("-started_at").values("evidence", "failure_class").first()) if failing else None
    evidence = {"failure_classes": dict(classes), "locations": sorted({p.location.name for p in failing}),
                "probes": sorted({p.probe.slug for p in failing})}
    if latest:
        for key in ("status_code", "platform_error", "request"):
            if key in latest["evidence"]:
                evidence[key] = latest["evidence"][key]
        if isinstance(evidence.get("platform_error"), str):
            evidence["platform_error"] = _without_account_names(evidence["platform_error"], failing)
    return evidence


def _without_account_names(text: str, failing: list[ProbeLocation]) -> str:
    """The platform's words go public in the incident's updates, but the names of Vigie's test
    accounts must not ("Account @vigie_prober is suspended" → "Account @[test account] is …")."""
    import re

    names = (Account.objects.filter(platform__probes__in={p.probe_id for p in failing})
             .exclude(username="").values_list("username", flat=True).distinct())
    for name in sorted(set(names), key=len, reverse=True):
        text = re.sub(re.escape(name), "[test account]", text, flags=re.IGNORECASE)
    return text


def _evidence_merge(old: dict, new: dict) -> dict:
    """The evidence of the whole incident: every location and probe that failed in it and the most
    placements seen failing with each class, not just what still fails while it recovers."""
    merged = {**old, **new}
    if "component_starts" in old:
        merged["component_starts"] = old["component_starts"]
    for key in ("locations", "probes"):
        merged[key] = sorted(set(old.get(key, [])) | set(new.get(key, [])))
    classes = dict(old.get("failure_classes", {}))
    for name, count in new.get("failure_classes", {}).items():
        classes[name] = max(count, classes.get(name, 0))
    merged["failure_classes"] = classes
    return merged


def _impact(incident: Incident) -> str:
    worst = max(IncidentComponent.objects.filter(incident=incident).values_list("worst_status", flat=True),
                key=lambda s: SEVERITY.get(s, 0), default=ComponentStatus.OPERATIONAL)
    return IMPACT.get(worst, Impact.NONE)


def incident_add_update(*, incident: Incident, status: str, body: str, automatic: bool,
                        affected: list[dict] | None = None, at: datetime | None = None,
                        text: dict | None = None) -> IncidentUpdate:
    """`text`: an automatic body's key and parameters, for pages in other languages (detection.texts)."""
    update = IncidentUpdate.objects.create(incident=incident, status=status, body=body, automatic=automatic,
                                           affected_components=affected or [], text=text or {},
                                           created_at=at or timezone.now())
    fields = {"status": status, "updated_at": timezone.now()}
    if status == IncidentStatus.MONITORING and not incident.monitoring_at:
        fields["monitoring_at"] = timezone.now()
    Incident.objects.filter(id=incident.id).update(**fields)
    for key, value in fields.items():
        setattr(incident, key, value)
    public_change()
    announce(incident_updated, update_id=update.id)
    return update


def _join(incident: Incident, component: Component) -> dict | None:
    """Add a component to the incident or note its new status; the change for the timeline."""
    link, created = IncidentComponent.objects.get_or_create(
        incident=incident, component=component,
        defaults={"worst_status": component.status, "last_status": component.status})
    if created:
        return {"code": component.public_id, "name": component.name, "old_status": ComponentStatus.OPERATIONAL,
                "new_status": component.status}
    if link.last_status == component.status:
        return None
    change = {"code": component.public_id, "name": component.name, "old_status": link.last_status,
              "new_status": component.status}
    link.last_status = component.status
    if SEVERITY.get(component.status, 0) > SEVERITY.get(link.worst_status, 0):
        link.worst_status = component.status
    link.save(update_fields=["last_status", "worst_status"])
    return change


def incidents_reconcile(platform: Platform, now: datetime) -> Incident | None:
    """Open, grow, watch or resolve the platform's automatic incident. Called with the platform
    row locked (see evaluation.run_evaluate), so it never races itself."""
    incident = Incident.objects.filter(platform=platform, automatic=True, resolved_at__isnull=True).first()
    out = _outage_components(platform)
    if not out and incident is None:
        return None
    if out and incident is None:
        if not _confirmed(out):
            return None
        return _open(platform, out, now)
    assert incident is not None
    changes = [c for c in (_join(incident, component) for component in out) if c]
    components, placements = _affected(incident, platform)
    for component in components:
        if component not in out:
            change = _join(incident, component)
            if change:
                changes.append(change)
    failing = [p for p in placements if p.state == PlacementState.FAILING]
    if not out and _recovered(incident, components, placements):
        return _resolve(incident, components, placements, changes, now)
    fields = {"impact": _impact(incident), "evidence": _evidence_merge(incident.evidence, _evidence(failing))
              if failing else incident.evidence}
    joined = [c for c in components if c.name not in (incident.evidence.get("component_starts") or {})]
    if joined and failing:
        # A component joining brings its own start (kept once), never moving the incident's.
        starts = {**_component_starts(joined, failing), **(incident.evidence.get("component_starts") or {})}
        fields["evidence"] = {**fields["evidence"], "component_starts": starts}
    if not incident.title_locked:
        # The title covers the incident's whole extent, so it never narrows while things recover.
        involved = [p for p in placements if p.last_failure_at and p.last_failure_at >= incident.started_at]
        fields["title_text"] = incident_title_text(platform, components, involved)
        fields["title"] = title_render(fields["title_text"], language="en")[:200]
    # This runs for every run while the incident is open: write only what changed.
    fields = {k: v for k, v in fields.items() if getattr(incident, k) != v}
    if fields:
        Incident.objects.filter(id=incident.id).update(**fields)
        for key, value in fields.items():
            setattr(incident, key, value)
        public_change()
    if changes:
        # Only a worsening sends a watched incident back to investigating; a component getting
        # better while runs recover keeps it in monitoring (no back-and-forth on the timeline).
        worse = any(SEVERITY.get(c["new_status"], 0) > SEVERITY.get(c["old_status"], 0) for c in changes)
        status = IncidentStatus.INVESTIGATING if incident.status == IncidentStatus.MONITORING and worse \
            else incident.status
        named = {n["name"]: n for n in component_names(components)}
        text = {"key": "changed", "params": {"changes": [
            {**named.get(c["name"], {"name": c["name"]}), "old_status": c["old_status"], "new_status": c["new_status"]}
            for c in changes]}}
        incident_add_update(incident=incident, status=status, body=text_english(text), automatic=True,
                            affected=changes, text=text)
    if (incident.status in (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED) and failing
            and all(p.consecutive_successes >= 1 for p in failing)):
        text = {"key": "recovering", "params": {"locations": sorted({p.location.name for p in failing})}}
        incident_add_update(incident=incident, status=IncidentStatus.MONITORING, automatic=True,
                            body=text_english(text), text=text)
    elif incident.status == IncidentStatus.MONITORING and any(p.consecutive_failures >= 1 for p in failing):
        again = sorted({p.location.name for p in failing if p.consecutive_failures >= 1})
        text = {"key": "failing_again", "params": {"locations": again}}
        incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, automatic=True,
                            body=text_english(text), text=text)
    return incident


def _at_hand(failing: list[ProbeLocation]) -> list[ProbeLocation]:
    """The placements failing with the failure that opens the incident: the class family of the
    placements whose streaks confirmed it (the most of them; the earliest streak on a tie). Another
    component failing otherwise (a noisy one) joins the incident but never dates its start."""
    from detection.evaluation import class_family

    extra = settings.VIGIE_INCIDENT_CONFIRM_RUNS
    confirming = [p for p in failing if p.consecutive_failures >= p.probe.failure_threshold + extra]
    if not confirming:
        return failing
    families = Counter(class_family(p.last_failure_class) for p in confirming)
    earliest = {}
    for p in confirming:
        family = class_family(p.last_failure_class)
        if p.streak_started_at and (family not in earliest or p.streak_started_at < earliest[family]):
            earliest[family] = p.streak_started_at
    family = min(families, key=lambda f: (-families[f], earliest.get(f, FAR_FUTURE)))
    return [p for p in failing if class_family(p.last_failure_class) == family]


FAR_FUTURE = datetime.max.replace(tzinfo=dt_timezone.utc)


def _component_starts(components: list[Component], failing: list[ProbeLocation]) -> dict[str, str]:
    """Each component's own start in the incident: the first failing run of its placements' streaks.
    On the incident's timeline (evidence), never moving the incident's own start."""
    starts = {}
    for component in components:
        probe_ids = set(component.probes.values_list("id", flat=True))
        times = [p.streak_started_at for p in failing if p.probe_id in probe_ids and p.streak_started_at]
        if times:
            starts[component.name] = min(times).isoformat()
    return starts


def _open(platform: Platform, out: list[Component], now: datetime) -> Incident:
    failing = list(ProbeLocation.objects.filter(probe__components__in=out, probe__enabled=True,
                                                state=PlacementState.FAILING).select_related("probe", "location")
                   .distinct())
    at_hand = _at_hand(failing)
    first = min((p for p in at_hand if p.streak_started_at), key=lambda p: p.streak_started_at, default=None)
    started_at = first.streak_started_at if first else now
    previous = first.streak_previous_success_at if first else None
    # Detected when the failure at hand was: a placement of another family detected earlier (a
    # noisy component that joins) would date the detection before the start.
    detected = [max(p.detected_at, started_at) for p in at_hand if p.detected_at]
    evidence = _evidence(failing)
    evidence["component_starts"] = _component_starts(out, failing)
    title_text = incident_title_text(platform, out, failing)
    with transaction.atomic():
        incident = Incident.objects.create(
            platform=platform, automatic=True, title=title_render(title_text, language="en")[:200], title_text=title_text,
            started_at=started_at, detected_at=min(detected) if detected else now,
            started_uncertainty_s=(started_at - previous).total_seconds() if previous else 0.0,
            evidence=evidence,
        )
        changes = [_join(incident, c) for c in out]
    incident.impact = _impact(incident)
    Incident.objects.filter(id=incident.id).update(impact=incident.impact)
    classes = sorted((evidence.get("failure_classes") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    text = {"key": "opened", "params": {
        "components": component_names(out), "classes": [name for name, _ in classes],
        "status_code": evidence["status_code"] if isinstance(evidence.get("status_code"), int) else None,
        "locations": evidence.get("locations") or [], "started_at": started_at.isoformat()}}
    incident_add_update(incident=incident, status=IncidentStatus.INVESTIGATING, body=text_english(text),
                        automatic=True, affected=[c for c in changes if c], text=text)
    return incident


def _resolve(incident: Incident, components: list[Component], placements: list[ProbeLocation],
             changes: list[dict], now: datetime) -> Incident:
    # The end is the first successful run of the last recovery among the locations that failed in
    # this incident; the component rows (dated the same way) cover a recovery through slow runs.
    back = [p.recovery_started_at for p in placements
            if p.last_failure_at and p.last_failure_at >= incident.started_at and p.recovery_started_at]
    for c in components:
        trouble = list(OUTAGE_STATUSES) + ([ComponentStatus.DEGRADED] if c.incident_on_degraded else [])
        back.append(c.status_changes.filter(old_status__in=trouble, changed_at__gte=incident.started_at)
                    .exclude(new_status__in=trouble).order_by("-changed_at").values_list("changed_at", flat=True)
                    .first())
    resolved_at = max([t for t in back if t] or [now])
    resolved_at = max(resolved_at, incident.started_at)
    last_failures = [p.last_failure_at for p in placements if p.last_failure_at and p.last_failure_at <= resolved_at]
    uncertainty = (resolved_at - max(last_failures)).total_seconds() if last_failures else 0.0
    Incident.objects.filter(id=incident.id).update(resolved_at=resolved_at, resolved_uncertainty_s=uncertainty,
                                                   impact=_impact(incident))
    incident.resolved_at, incident.resolved_uncertainty_s = resolved_at, uncertainty
    text = {"key": "resolved", "params": {"duration": format_duration(incident.duration),
                                          "uncertainty": format_duration_seconds(incident.duration_uncertainty_s)}}
    incident_add_update(incident=incident, status=IncidentStatus.RESOLVED, body=text_english(text), automatic=True,
                        affected=changes, text=text)
    return incident


def format_duration(delta) -> str:
    return format_duration_seconds(delta.total_seconds()) if delta is not None else "—"


def format_duration_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def incident_set_status(*, incident: Incident, status: str, body: str) -> IncidentUpdate:
    """A person moves the incident (identified, monitoring, resolved, postmortem) with a message."""
    if status == IncidentStatus.RESOLVED and incident.resolved_at is None:
        Incident.objects.filter(id=incident.id).update(resolved_at=timezone.now())
        incident.resolved_at = timezone.now()
    return incident_add_update(incident=incident, status=status, body=body, automatic=False)


def incident_set_impact(*, incident: Incident, impact: str) -> Incident:
    """A person overrides the evidence-based impact; an empty value hands it back to the evidence."""
    if impact and impact not in Impact.values:
        raise ValueError(f"Unknown impact {impact!r}: use one of {', '.join(Impact.values)} or ''.")
    now = timezone.now()
    Incident.objects.filter(id=incident.id).update(impact_override=impact, updated_at=now)
    incident.impact_override, incident.updated_at = impact, now
    public_change()
    return incident


def incident_write_postmortem(*, incident: Incident, body: str) -> Incident:
    """Write (or rewrite) the postmortem and publish it; the first publication of a resolved
    incident's postmortem moves it to `postmortem` on its timeline, as on Statuspage."""
    now = timezone.now()
    first = bool(body) and not incident.postmortem_published_at
    Incident.objects.filter(id=incident.id).update(postmortem_body=body, postmortem_published_at=now if body else None,
                                                   updated_at=now)
    incident.postmortem_body, incident.postmortem_published_at = body, now if body else None
    if first and incident.resolved_at is not None:
        incident_add_update(incident=incident, status=IncidentStatus.POSTMORTEM, body="Postmortem published.",
                            automatic=False, text={"key": "postmortem", "params": {}})
    else:
        public_change()
    return incident


def incident_open_manual(*, title: str, body: str, status: str, components: list[Component],
                         impact_override: str = "", started_at: datetime | None = None) -> Incident:
    """A person opens an incident: the title is theirs (kept), its first update says why."""
    now = timezone.now()
    with transaction.atomic():
        incident = Incident.objects.create(title=title, title_locked=True, status=status, automatic=False,
                                           impact_override=impact_override, started_at=started_at or now,
                                           detected_at=now)
        for component in components:
            IncidentComponent.objects.create(incident=incident, component=component, worst_status=component.status,
                                             last_status=component.status)
        affected = [{"code": c.public_id, "name": c.name, "old_status": ComponentStatus.OPERATIONAL,
                     "new_status": c.status} for c in components]
        incident_add_update(incident=incident, status=status, body=body, automatic=False, affected=affected)
        if status == "resolved":
            Incident.objects.filter(id=incident.id).update(resolved_at=now)
            incident.resolved_at = now
    return incident


def incident_set_title(*, incident: Incident, title: str) -> Incident:
    """A person's title, kept from now on: the evaluator no longer rewrites it."""
    now = timezone.now()
    Incident.objects.filter(id=incident.id).update(title=title, title_locked=True, updated_at=now)
    incident.title, incident.title_locked, incident.updated_at = title, True, now
    public_change()
    return incident


def incident_edit(*, incident: Incident, fields: dict) -> Incident:
    """Change what a person may change — title, impact override, postmortem — each through its own
    function, and only what differs (the evaluator may be updating the same incident)."""
    changed = {k: v for k, v in fields.items() if getattr(incident, k) != v}
    if "title" in changed:
        incident_set_title(incident=incident, title=changed["title"])
    if "impact_override" in changed:
        incident_set_impact(incident=incident, impact=changed["impact_override"])
    if "postmortem_body" in changed:
        incident_write_postmortem(incident=incident, body=changed["postmortem_body"])
    return incident
