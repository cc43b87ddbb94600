"""The on-call dashboard's views: staff only; forms are plain POST + redirect and call one domain
function each; two HTML fragments let the page refresh itself in place."""
from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from detection import evaluation
from detection.incidents import incident_set_impact, incident_set_status, incident_write_postmortem
from detection.models import Incident, IncidentStatus
from oncall import faults, selectors
from probes import deadletter
from probes.models import TaskDelivery
from oncall.forms import ImpactForm, IncidentUpdateForm, MaintenanceForm, PostmortemForm, ResolveForm
from probes.lease import lease_leader

FRAGMENTS = {"matrix": "oncall/_matrix.html", "incidents": "oncall/_incidents.html"}
SCRIPT = "oncall/oncall.js"


def staff_only(view):
    """Anonymous → the login page; signed in but not staff → 403. Never cached."""
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("The on-call dashboard is for staff users.")
        return view(request, *args, **kwargs)
    return never_cache(wrapper)


def _incident_forms(incident: Incident) -> None:
    """Each incident's forms, with element ids of its own (several incidents share one page)."""
    auto_id = f"id_{incident.public_id}_%s"
    incident.update_form = IncidentUpdateForm(auto_id=auto_id, initial={"status": incident.status})
    incident.resolve_form = ResolveForm(auto_id=auto_id + "_resolve")
    incident.impact_form = ImpactForm(auto_id=auto_id, initial={"impact": incident.impact_override})
    incident.postmortem_form = PostmortemForm(auto_id=auto_id, initial={"body": incident.postmortem_body})


def _incidents_context(now) -> dict:
    context = selectors.incidents(now)
    for incident in context["open_incidents"] + context["resolved_incidents"]:
        _incident_forms(incident)
    return context


def _dashboard(request: HttpRequest, *, maintenance_form: MaintenanceForm | None = None,
               status: int = 200) -> HttpResponse:
    now = timezone.now()
    return render(request, "oncall/dashboard.html", {
        **selectors.matrix(now),
        **_incidents_context(now),
        "usage": selectors.write_usage(now),
        "own_problems": selectors.own_problems(),
        "scheduler_leader": lease_leader(),
        "maintenances": selectors.maintenances(now),
        "maintenance_form": maintenance_form or MaintenanceForm(),
        "stats": selectors.component_stats(now),
        "stats_days": selectors.STATS_DAYS,
        "now": now,
        **faults.context(now),  # issue 20: dependencies, dead letters, dropped runs, lateness
    }, status=status)


@require_safe
@staff_only
def dashboard(request: HttpRequest) -> HttpResponse:
    return _dashboard(request)


@require_safe
@staff_only
def fragment(request: HttpRequest, name: str) -> HttpResponse:
    if name not in FRAGMENTS:
        raise Http404("No such fragment.")
    now = timezone.now()
    context = selectors.matrix(now) if name == "matrix" else {**_incidents_context(now), "now": now}
    return render(request, FRAGMENTS[name], context)


@require_safe
@staff_only
def script(request: HttpRequest) -> HttpResponse:
    """The dashboard's script, served by Django: the on-call page must work with DEBUG off and no
    static file server, and the file stays in static/ so collectstatic and a CDN can take over."""
    path = finders.find(SCRIPT)
    if not path:
        raise Http404("The dashboard script is missing.")
    with open(path, encoding="utf-8") as file:
        response = HttpResponse(file.read(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "private, max-age=300"
    return response


def _form_errors(form) -> str:
    """“Message: This field is required.”: each error with the label of its field."""
    parts = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = (field.label or name.capitalize()) if field else ""
        parts.append(f"{label}: {' '.join(errors)}" if label else " ".join(errors))
    return "; ".join(parts)


def _back() -> HttpResponse:
    return redirect("oncall:dashboard")


@require_POST
@staff_only
def incident_update(request: HttpRequest, public_id: str) -> HttpResponse:
    incident = get_object_or_404(Incident, public_id=public_id)
    form = IncidentUpdateForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Update not posted to “{incident.title}”: {_form_errors(form)}")
        return _back()
    incident_set_status(incident=incident, status=form.cleaned_data["status"], body=form.cleaned_data["body"])
    messages.success(request, f"Update posted to “{incident.title}”.")
    return _back()


@require_POST
@staff_only
def incident_resolve(request: HttpRequest, public_id: str) -> HttpResponse:
    incident = get_object_or_404(Incident, public_id=public_id)
    form = ResolveForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"“{incident.title}” not resolved: {_form_errors(form)}")
        return _back()
    incident_set_status(incident=incident, status=IncidentStatus.RESOLVED, body=form.cleaned_data["body"])
    messages.success(request, f"“{incident.title}” resolved.")
    return _back()


@require_POST
@staff_only
def incident_impact(request: HttpRequest, public_id: str) -> HttpResponse:
    incident = get_object_or_404(Incident, public_id=public_id)
    form = ImpactForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Impact of “{incident.title}” not changed: {_form_errors(form)}")
        return _back()
    incident_set_impact(incident=incident, impact=form.cleaned_data["impact"])
    messages.success(request, f"Impact of “{incident.title}” is now {incident.effective_impact}.")
    return _back()


@require_POST
@staff_only
def incident_postmortem(request: HttpRequest, public_id: str) -> HttpResponse:
    incident = get_object_or_404(Incident, public_id=public_id)
    form = PostmortemForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Postmortem of “{incident.title}” not saved: {_form_errors(form)}")
        return _back()
    incident_write_postmortem(incident=incident, body=form.cleaned_data["body"])
    messages.success(request, f"Postmortem of “{incident.title}” "
                              + ("published." if form.cleaned_data["body"] else "removed."))
    return _back()


@require_POST
@staff_only
def maintenance_create(request: HttpRequest) -> HttpResponse:
    form = MaintenanceForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, maintenance_form=form, status=400)
    maintenance = form.save()
    evaluation.maintenance_refresh(maintenance=maintenance)
    messages.success(request, f"Maintenance “{maintenance.title}” scheduled.")
    return _back()


# --- Dead letters (issue 20): on-call sends a poison message again, or throws it away -----------------

@require_POST
@staff_only
def dead_letter_retry(request: HttpRequest, letter_id: int) -> HttpResponse:
    from kombu.exceptions import OperationalError as BrokerDown

    get_object_or_404(TaskDelivery, id=letter_id, state=TaskDelivery.State.DEAD)
    try:
        task_id = deadletter.dead_letter_retry(row_id=letter_id)
    except BrokerDown:
        messages.error(request, "The broker is unavailable: the dead letter is kept; retry once it is back.")
        return _back()
    if task_id is None:
        messages.error(request, "This dead letter's arguments were redacted: it cannot be sent again.")
    else:
        messages.success(request, f"Dead letter sent again as task {task_id}.")
    return _back()


@require_POST
@staff_only
def dead_letter_discard(request: HttpRequest, letter_id: int) -> HttpResponse:
    if deadletter.dead_letter_discard(row_id=letter_id):
        messages.success(request, "Dead letter discarded.")
    else:
        messages.error(request, "No such dead letter (discarded or retried already).")
    return _back()
