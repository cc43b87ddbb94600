"""The admin: what on-call people use (until the dashboard) to steer incidents and maintenance."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models
from django.utils import timezone

from probes import evaluation, incidents
from probes.models import (
    Account, Artifact, Component, ComponentStatusChange, Incident, IncidentUpdate, Location, Maintenance, OwnProblem,
    Platform, Probe, ProbeLocation, Run,
)
from statuspage.models import ApiToken, apitoken_revoke


class AccountForm(forms.ModelForm):
    # Write-only: the stored token is never sent back to the browser; empty keeps it.
    token = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                            help_text="Stored encrypted. Leave empty to keep the current token.")

    class Meta:
        model = Account
        fields = ["platform", "role", "username", "token"]

    def clean_token(self):
        token = self.cleaned_data.get("token")
        if token and any(ch.isspace() or ord(ch) < 32 for ch in token):
            raise forms.ValidationError("The token contains white space or control characters.")
        if not token:
            if self.instance.pk:
                return Account.objects.get(pk=self.instance.pk).token
            raise forms.ValidationError("A token is required for a new account.")
        return token


class AccountInline(admin.TabularInline):
    model = Account
    form = AccountForm
    extra = 0


@admin.register(Platform)
class PlatformAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "base_url", "enabled"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = [AccountInline]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Tokens are bound to the origin they were stored for: a token not typed again with a new
        # base_url (or kind) is not sent there (probes/models.py Platform.save, docs/security.md).
        platform = form.instance
        stale = [a.username for a in platform.accounts.all() if not a.token_usable_for(platform.base_url)]
        if stale:
            from django.contrib import messages

            messages.warning(request, f"The tokens of {', '.join(stale)} are not valid for {platform.base_url}: "
                                      "base_url or kind changed, and a token is never sent to another origin. "
                                      "Type the tokens again to use them there.")


class PlacementInline(admin.TabularInline):
    model = ProbeLocation
    extra = 0
    fields = ["location", "state", "consecutive_failures", "consecutive_successes", "flapping", "last_run_at",
              "next_run_at"]
    readonly_fields = ["state", "consecutive_failures", "consecutive_successes", "flapping", "last_run_at"]


@admin.register(Probe)
class ProbeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "platform", "action", "interval_s", "enabled"]
    list_filter = ["platform", "action", "enabled"]
    inlines = [PlacementInline]


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["name", "label"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "probe", "location", "outcome", "failure_class", "latency_ms", "cleanup"]
    list_filter = ["outcome", "failure_class", "location", "probe"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in Run._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    """What probes made on platforms, and whether cleanup removed it: read only. An empty
    "cleaned at" with a growing attempt count is what a person should look at."""

    list_display = ["created_at", "kind", "remote_id", "account", "probe", "cleaned_at", "attempts", "last_error"]
    list_filter = [("cleaned_at", admin.EmptyFieldListFilter), "kind", "probe"]
    readonly_fields = [f.name for f in Artifact._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made with `manage.py apitoken create` (the only time the token is shown); here
    they are seen and revoked."""

    list_display = ["name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    fields = ["name", "prefix", "scope", "user", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            apitoken_revoke(prefix=token.prefix)
