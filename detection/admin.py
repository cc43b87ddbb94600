"""The admin of what detection owns: components, incidents and their timeline, maintenances, own problems."""
from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from detection import evaluation, incidents
from detection.models import Component, ComponentStatusChange, Incident, IncidentUpdate, Maintenance, OwnProblem


class StatusChangeInline(admin.TabularInline):
    model = ComponentStatusChange
    extra = 0
    fields = ["changed_at", "old_status", "new_status", "reason"]
    readonly_fields = fields
    ordering = ["-changed_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Component)
class ComponentAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "stale", "position"]
    # Status and its times come from evaluation; the uptime rollups count from `created_at`.
    readonly_fields = ["status", "status_since", "stale", "public_id", "created_at"]
    filter_horizontal = ["probes"]
    inlines = [StatusChangeInline]


class UpdateInline(admin.StackedInline):
    model = IncidentUpdate
    extra = 1
    fields = ["status", "body", "created_at", "automatic"]
    readonly_fields = ["created_at", "automatic"]

    def has_change_permission(self, request, obj=None):
        return False  # the timeline is history: add to it, never rewrite it


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "impact", "impact_override", "started_at", "resolved_at", "automatic"]
    list_filter = ["status", "automatic", "platform"]
    fields = ["title", "status", "impact", "impact_override", "platform", "started_at", "detected_at",
              "resolved_at", "started_uncertainty_s", "resolved_uncertainty_s", "evidence", "postmortem_body"]
    readonly_fields = ["status", "impact", "platform", "detected_at", "started_uncertainty_s",
                       "resolved_uncertainty_s", "evidence"]
    inlines = [UpdateInline]

    def get_readonly_fields(self, request, obj=None):
        # Evidence-based times of automatic incidents are not edited; a person's incident sets its own.
        fixed = list(self.readonly_fields)
        if obj is not None and obj.automatic:
            fixed += ["started_at", "resolved_at"]
        return fixed

    def save_model(self, request, obj, form, change):
        if change and "title" in form.changed_data:
            obj.title_locked = True  # a person's title is kept from now on
        if not change:
            obj.detected_at = obj.detected_at or timezone.now()
            obj.started_at = obj.started_at or timezone.now()
        if "postmortem_body" in form.changed_data and obj.postmortem_body:
            obj.postmortem_published_at = timezone.now()
        obj.updated_at = timezone.now()
        if change:
            # Only what the person changed: the evaluator may have resolved it meanwhile.
            fields = [f for f in form.changed_data if f in {f.name for f in Incident._meta.fields}]
            obj.save(update_fields=[*fields, "title_locked", "updated_at", "postmortem_published_at"])
        else:
            super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        if formset.model is not IncidentUpdate:
            return super().save_formset(request, form, formset, change)
        for update in formset.save(commit=False):
            if update.pk is None:
                incidents.incident_set_status(incident=form.instance, status=update.status, body=update.body)


@admin.register(Maintenance)
class MaintenanceAdmin(admin.ModelAdmin):
    list_display = ["title", "scheduled_for", "scheduled_until", "cancelled"]
    fields = ["title", "body", "components", "scheduled_for", "scheduled_until", "cancelled"]
    filter_horizontal = ["components"]

    def save_related(self, request, form, formsets, change):
        before = list(form.instance.components.all()) if change else []
        super().save_related(request, form, formsets, change)
        evaluation.maintenance_refresh(maintenance=form.instance, also=before)


@admin.register(OwnProblem)
class OwnProblemAdmin(admin.ModelAdmin):
    list_display = ["kind", "subject", "opened_at", "resolved_at"]
    list_filter = ["kind"]
    readonly_fields = ["kind", "subject", "detail", "opened_at", "resolved_at"]
