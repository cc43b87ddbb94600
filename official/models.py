"""The platforms' own declarations, as rows: the source read, its current declared state, every
change of it as first seen, the official incidents, and each Vigie incident's acknowledgement.

Words: *declared* is what the platform says about itself; *measured* is what Vigie's probes saw.
A source that cannot be read is "unreachable" — never "operational".
"""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from detection.models import Component, Incident
from probes.models import Platform


class SourceKind(models.TextChoices):
    STATUSPAGE = "statuspage", "Statuspage v2 page"  # url is the page root; /api/v2/*.json is read
    FEED = "feed", "RSS or Atom feed"  # url is the feed itself


class Indicator(models.TextChoices):
    """The declared overall state: Statuspage's `status.indicator`, plus Vigie's two own words."""

    NONE = "none", "All systems operational"
    MINOR = "minor", "Minor"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"
    MAINTENANCE = "maintenance", "Maintenance"
    # Vigie could not read the source (error, timeout, hostile or unparsable answer).
    UNREACHABLE = "unreachable", "Official source unreachable"
    # Not read yet.
    UNKNOWN = "unknown", "Not read yet"


class OfficialSource(models.Model):
    """Where a platform declares its status (config `official_status:`); no row means `none`."""

    platform = models.OneToOneField(Platform, on_delete=models.CASCADE, related_name="official_source")
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    url = models.URLField(max_length=300)
    poll_interval_s = models.PositiveIntegerField(default=60, validators=[MinValueValidator(10), MaxValueValidator(86400)])
    # Official component name → Vigie component name, from the config's `components:` mapping; a
    # name not in the mapping matches a Vigie component of the same name (case-insensitive).
    component_map = models.JSONField(default=dict, blank=True)
    # On-call is told when an incident stays unacknowledged this long (config `unacknowledged_after`).
    unacknowledged_after_s = models.PositiveIntegerField(default=900, validators=[MinValueValidator(60)])
    enabled = models.BooleanField(default=True)
    next_poll_at = models.DateTimeField(default=timezone.now)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    # The current declared state (the latest OfficialStateChange of kind indicator says the same).
    indicator = models.CharField(max_length=16, choices=Indicator.choices, default=Indicator.UNKNOWN)
    indicator_since = models.DateTimeField(null=True, blank=True)
    # The platform's own one-line description ("All Systems Operational"), sanitized plain text.
    description = models.CharField(max_length=200, blank=True)
    # Why the last read failed, in Vigie's words (never a raw body, never a secret).
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The beat task: sources due for a read.
            models.Index(fields=["enabled", "next_poll_at"], name="official_source_due"),
        ]

    def __str__(self) -> str:
        return f"{self.platform.slug}: {self.kind} {self.url}"


class OfficialIncident(models.Model):
    """An incident the platform declared (a Statuspage incident, or a feed entry)."""

    source = models.ForeignKey(OfficialSource, on_delete=models.CASCADE, related_name="incidents")
    external_id = models.CharField(max_length=200, help_text="Statuspage incident id, or the feed entry's id/link.")
    name = models.CharField(max_length=200, help_text="Sanitized plain text.")
    url = models.URLField(max_length=500, blank=True, help_text="The official incident page (http/https only).")
    impact = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, blank=True)  # investigating … resolved, postmortem
    # Official component names it names (Statuspage `components[].name`), and the Vigie
    # components they map to.
    official_components = models.JSONField(default=list, blank=True)
    components = models.ManyToManyField(Component, blank=True, related_name="official_incidents")
    # What the platform says (clamped to when Vigie saw it: a declaration is never earlier than
    # its first sign is trusted to be, nor later than it was seen).
    declared_started_at = models.DateTimeField(null=True, blank=True)
    declared_resolved_at = models.DateTimeField(null=True, blank=True)
    # What Vigie saw: when the incident first appeared in the source, when it was first seen resolved.
    first_seen_at = models.DateTimeField()
    resolved_seen_at = models.DateTimeField(null=True, blank=True)
    last_update_text = models.CharField(max_length=500, blank=True, help_text="Latest official update, sanitized plain text.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="official_incident_once"),
        ]
        indexes = [
            # The public page and matching: a source's incidents by time.
            models.Index(fields=["source", "first_seen_at"], name="official_incident_by_time"),
        ]
        ordering = ["-first_seen_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def acknowledged_at(self):
        """The official first sign: the declared start, else when Vigie first saw it."""
        return self.declared_started_at or self.first_seen_at


class OfficialComponent(models.Model):
    """A component on the official page and its declared status, mapped to a Vigie component when
    the config or the names say so."""

    source = models.ForeignKey(OfficialSource, on_delete=models.CASCADE, related_name="components")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=24, blank=True)  # Statuspage component status words
    status_since = models.DateTimeField(null=True, blank=True)
    component = models.ForeignKey(Component, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="official_components")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "name"], name="official_component_once")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ChangeKind(models.TextChoices):
    INDICATOR = "indicator", "Declared status"
    INCIDENT_OPENED = "incident_opened", "Official incident opened"
    INCIDENT_UPDATED = "incident_updated", "Official incident updated"
    INCIDENT_RESOLVED = "incident_resolved", "Official incident resolved"
    COMPONENT = "component", "Official component status"


class OfficialStateChange(models.Model):
    """Every change of what a platform declares, with the time Vigie first saw it (like
    ComponentStatusChange for the measured side). A failed read is an indicator change to
    `unreachable`, never a silence."""

    source = models.ForeignKey(OfficialSource, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=20, choices=ChangeKind.choices)
    old = models.CharField(max_length=24, blank=True)
    new = models.CharField(max_length=24, blank=True)
    official_incident = models.ForeignKey(OfficialIncident, null=True, blank=True, on_delete=models.CASCADE,
                                          related_name="changes")
    official_component = models.ForeignKey(OfficialComponent, null=True, blank=True, on_delete=models.CASCADE,
                                           related_name="changes")
    text = models.CharField(max_length=500, blank=True, help_text="Sanitized plain text (update body, error in Vigie's words).")
    seen_at = models.DateTimeField(help_text="When Vigie first saw this change.")
    declared_at = models.DateTimeField(null=True, blank=True, help_text="When the platform says it happened, if it says.")

    class Meta:
        indexes = [
            # History and the page: a source's changes by time.
            models.Index(fields=["source", "seen_at"], name="official_change_by_time"),
        ]
        ordering = ["seen_at", "id"]


class IncidentAcknowledgement(models.Model):
    """How the platform acknowledged one Vigie incident: the first official incident or declared
    status change that overlaps it (same platform, by time and mapped components). One row per
    Vigie incident whose platform has an official source; `acknowledged_at` empty = not (yet)
    acknowledged. Written by official.acknowledgement; read by the page, feeds, on-call, reports."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="acknowledgement")
    source = models.ForeignKey(OfficialSource, on_delete=models.CASCADE, related_name="acknowledgements")
    official_incident = models.ForeignKey(OfficialIncident, null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="acknowledgements")
    official_change = models.ForeignKey(OfficialStateChange, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    # The official first sign (declared time, else first seen), and when Vigie saw it.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    # The official end (declared resolution, else when seen resolved), beside the measured one.
    official_resolved_at = models.DateTimeField(null=True, blank=True)
    # Notifications sent, claimed by a conditional UPDATE so each is sent once.
    unacknowledged_notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_notified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # History: a source's acknowledgements over the last 90 days.
            models.Index(fields=["source", "acknowledged_at"], name="official_ack_by_time"),
        ]

    @property
    def time_to_acknowledge_s(self) -> float | None:
        """Official first sign − measured start, in seconds (None while unacknowledged)."""
        if self.acknowledged_at is None:
            return None
        return (self.acknowledged_at - self.incident.started_at).total_seconds()
