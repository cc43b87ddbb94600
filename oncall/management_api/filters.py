"""Filters of the management API's lists (django-filter): runs by probe, place, outcome and time."""
from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

import django_filters
from django.core.exceptions import ValidationError

from probes.models import FailureClass, Outcome, Run

FIRST_YEAR, LAST_YEAR = 2000, 2100


def plausible_time(value: datetime) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValidationError(f"Give a time between the years {FIRST_YEAR} and {LAST_YEAR}.")


class RunFilter(django_filters.FilterSet):
    probe = django_filters.CharFilter(field_name="probe__slug", help_text="Slug of the probe.")
    location = django_filters.CharFilter(field_name="location__name", help_text="Name of the location.")
    outcome = django_filters.ChoiceFilter(choices=Outcome.choices)
    failure_class = django_filters.ChoiceFilter(choices=FailureClass.choices)
    started_after = django_filters.IsoDateTimeFilter(
        field_name="started_at", method="filter_after", validators=[plausible_time],
        help_text="Runs that started at or after this time (ISO 8601).")
    started_before = django_filters.IsoDateTimeFilter(
        field_name="started_at", method="filter_before", validators=[plausible_time],
        help_text="Runs that started before this time (ISO 8601).")

    class Meta:
        model = Run
        fields = ["probe", "location", "outcome", "failure_class", "started_after", "started_before"]

    # In UTC: PostgreSQL refuses the offsets past ±15:59 that ISO 8601 allows.
    def filter_after(self, queryset, name: str, value: datetime):
        return queryset.filter(started_at__gte=value.astimezone(dt_timezone.utc))

    def filter_before(self, queryset, name: str, value: datetime):
        return queryset.filter(started_at__lt=value.astimezone(dt_timezone.utc))
