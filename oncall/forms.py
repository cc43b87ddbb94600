"""The dashboard's forms: they validate; the views hand the cleaned values to domain functions."""
from __future__ import annotations

from django import forms

from detection.models import Component, Impact, IncidentStatus, Maintenance
from statuspage.sanitize import check_length


class _BoundedBody:
    """The body is bounded by VIGIE_MAX_BODY_CHARS (or VIGIE_MAX_POSTMORTEM_CHARS), with a clear
    error, and stored without the characters XML forbids (statuspage/sanitize.py)."""

    body_kind = "body"

    def clean_body(self):
        return check_length(self.cleaned_data.get("body") or "", self.body_kind)


DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class IncidentUpdateForm(_BoundedBody, forms.Form):
    status = forms.ChoiceField(choices=[(s.value, s.label) for s in IncidentStatus if s != IncidentStatus.POSTMORTEM])
    body = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 2}))


class ResolveForm(_BoundedBody, forms.Form):
    body = forms.CharField(label="Message", initial="This incident has been resolved.")


class ImpactForm(forms.Form):
    impact = forms.ChoiceField(required=False, label="Impact",
                               choices=[("", "From the evidence")] + list(Impact.choices))


class PostmortemForm(_BoundedBody, forms.Form):
    body_kind = "postmortem"
    body = forms.CharField(label="Postmortem", widget=forms.Textarea(attrs={"rows": 4}), required=False,
                           help_text="Published on the incident's public page; empty removes it.")


class MaintenanceForm(_BoundedBody, forms.ModelForm):
    scheduled_for = forms.DateTimeField(label="From", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format=DATETIME_FORMAT))
    scheduled_until = forms.DateTimeField(label="Until", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format=DATETIME_FORMAT))
    components = forms.ModelMultipleChoiceField(queryset=Component.objects.order_by("position", "name"),
                                                widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Maintenance
        fields = ["title", "body", "components", "scheduled_for", "scheduled_until"]
        widgets = {"body": forms.Textarea(attrs={"rows": 2})}

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("scheduled_for"), cleaned.get("scheduled_until")
        if start and end and end <= start:
            self.add_error("scheduled_until", "“Until” must be later than “From”.")
        return cleaned
