"""The dashboard's forms: they validate; the views hand the cleaned values to domain functions."""
from __future__ import annotations

from django import forms

from detection.models import Component, Impact, IncidentStatus, Maintenance

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class IncidentUpdateForm(forms.Form):
    status = forms.ChoiceField(choices=[(s.value, s.label) for s in IncidentStatus if s != IncidentStatus.POSTMORTEM])
    body = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)


class ResolveForm(forms.Form):
    body = forms.CharField(label="Message", initial="This incident has been resolved.", max_length=5000)


class ImpactForm(forms.Form):
    impact = forms.ChoiceField(required=False, label="Impact",
                               choices=[("", "From the evidence")] + list(Impact.choices))


class PostmortemForm(forms.Form):
    body = forms.CharField(label="Postmortem", widget=forms.Textarea(attrs={"rows": 4}), required=False,
                           max_length=50_000, help_text="Published on the incident's public page; empty removes it.")


class MaintenanceForm(forms.ModelForm):
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
