"""The admin of what probes own: platforms and their accounts, probes and their placements, locations, runs, artifacts."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models

from probes.models import Account, Artifact, Location, Platform, Probe, ProbeLocation, Run


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
