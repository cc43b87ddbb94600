"""Vigie's own problems (not the platform's) for on-call: opened once per kind and subject,
resolved when the cause goes, each change announced. Used by evaluation, the budget and the
scheduler's heartbeat, which import this and not one another."""
from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from detection.events import announce, problem_changed
from detection.models import OwnProblem


def problem_open(kind: str, subject: str, detail: str) -> OwnProblem:
    problem = OwnProblem.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).first()
    if problem:
        return problem
    try:
        with transaction.atomic():
            problem = OwnProblem.objects.create(kind=kind, subject=subject, detail=detail)
        announce(problem_changed, problem_id=problem.id)
        return problem
    except IntegrityError:  # opened meanwhile by another worker (unique constraint)
        return OwnProblem.objects.get(kind=kind, subject=subject, resolved_at__isnull=True)


def problem_resolve(kind: str, subject: str) -> int:
    open_ = OwnProblem.objects.filter(Q(kind=kind) & Q(subject=subject) & Q(resolved_at__isnull=True))
    ids = list(open_.values_list("id", flat=True))
    resolved = OwnProblem.objects.filter(id__in=ids, resolved_at__isnull=True).update(resolved_at=timezone.now())
    for problem_id in ids:
        announce(problem_changed, problem_id=problem_id)
    return resolved
