"""What detection judges and the page publishes: components and their groups, status changes,
incidents and their timeline, maintenances, Vigie's own problems, and components' rollups.

The tables keep their names from when these models lived in probes (db_table "probes_…"): the move
was a change of Django's state only (detection/migrations/0001_initial.py). ComponentMonth, made
here since, has detection's own table name.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone, translation

from probes.models import PlacementState, Platform, ProbeLocation, Probe, Run, RunCounts, new_public_id

class ComponentStatus(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED = "degraded_performance", "Degraded performance"
    PARTIAL = "partial_outage", "Partial outage"
    MAJOR = "major_outage", "Major outage"
    MAINTENANCE = "under_maintenance", "Under maintenance"
    # Nothing measured: no run yet, no probe enabled, or no fresh run. Never shown as health, and
    # its time is not observed: uptime is counted over measured time only.
    UNKNOWN = "unknown", "No data"


# Worse is higher: how statuses compare when a component's incident grows or recovers.
STATUS_SEVERITY = {
    ComponentStatus.OPERATIONAL: 0, ComponentStatus.MAINTENANCE: 0, ComponentStatus.UNKNOWN: 0, ComponentStatus.DEGRADED: 1,
    ComponentStatus.PARTIAL: 2, ComponentStatus.MAJOR: 3,
}
OUTAGE_STATUSES = (ComponentStatus.PARTIAL, ComponentStatus.MAJOR)
# A second of partial outage counts as this much downtime (detection.uptime states the formula).
PARTIAL_WEIGHT = 0.3


class IncidentStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    POSTMORTEM = "postmortem", "Postmortem"


class Impact(models.TextChoices):
    NONE = "none", "None"
    MINOR = "minor", "Minor"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"


class ComponentGroup(models.Model):
    """A heading that gathers components ("Writes"); in Statuspage JSON, a component with
    `group: true` whose status is the worst of its members'."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "probes_componentgroup"
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Component(models.Model):
    """What the public sees ("Posting"), fed by one or more probes."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=100)
    # The operator's translations of the name, by language code ({"fr": "Publication"}), from the
    # config's `names`; the English name above stays the one the API, feeds and JSON carry.
    name_translations = models.JSONField(default=dict, blank=True,
                                         help_text='The name in other languages: {"fr": "Publication"}.')
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    group = models.ForeignKey(ComponentGroup, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="components")
    probes = models.ManyToManyField(Probe, related_name="components", blank=True)
    # Unknown until its first run: a component is never shown healthy before it is measured.
    status = models.CharField(max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.UNKNOWN)
    # No fresh run from any location: the page says monitoring is delayed instead of claiming health.
    stale = models.BooleanField(default=False)
    # Start of the current status (its last change, clamped as the history is): the rollups hold
    # the time before it, so uptime adds only [status_since, now) at request time.
    status_since = models.DateTimeField(null=True, blank=True, help_text="Last status change; empty: since created.")
    incident_on_degraded = models.BooleanField(default=False, help_text="Open incidents for degraded performance too.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "probes_component"
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def name_in(self, language: str | None = None) -> str:
        """The name in `language` (the active one by default): its translation, else the name."""
        language = (language or translation.get_language() or "").split("-")[0]
        return (self.name_translations or {}).get(language) or self.name

    @property
    def local_name(self) -> str:
        """The name in the language of the page being rendered (templates)."""
        return self.name_in()


class ComponentStatusChange(models.Model):
    """Every change of a component's status: uptime, history and feeds read these rows."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    new_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    reason = models.CharField(max_length=300)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # When the evidence says the change happened (the run's start), not when it was computed.
    changed_at = models.DateTimeField()

    class Meta:
        db_table = "probes_componentstatuschange"
        # A component's history in time order (uptime, history page).
        indexes = [models.Index(fields=["component", "changed_at"], name="component_history")]


class StatusSeconds(models.Model):
    """Seconds a component spent in each status, counted from its status changes (detection.rollups);
    operational is what is left of `observed_s`. Only time since the component was created is
    observed, and only closed intervals are here: the current one is added when read."""

    observed_s = models.FloatField(default=0)
    major_s = models.FloatField(default=0)
    partial_s = models.FloatField(default=0)
    degraded_s = models.FloatField(default=0)
    maintenance_s = models.FloatField(default=0)

    class Meta:
        abstract = True

    @property
    def down_s(self) -> float:
        """Weighted downtime, the numerator of detection.uptime's formula."""
        return self.major_s + PARTIAL_WEIGHT * self.partial_s


class ComponentHour(RunCounts, StatusSeconds):
    """A component's hour (UTC): its probes' runs at every location, and its status seconds."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="hours")
    hour = models.DateTimeField(help_text="Start of the hour (UTC).")

    class Meta:
        db_table = "probes_componenthour"
        constraints = [models.UniqueConstraint(fields=["component", "hour"], name="component_hour_unique")]

    def __str__(self) -> str:
        return f"{self.component} {self.hour:%Y-%m-%d %H}h"


class ComponentDay(RunCounts, StatusSeconds):
    """A component's calendar day in the page's time zone: what the uptime bars read (through
    ComponentMonth, its copy by month)."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="days")
    day = models.DateField(help_text="Calendar day in the page's time zone.")

    class Meta:
        db_table = "probes_componentday"
        # Also serves ComponentMonth's refresh: component_id = …, day in a month.
        constraints = [models.UniqueConstraint(fields=["component", "day"], name="component_day_unique")]

    def __str__(self) -> str:
        return f"{self.component} {self.day}"


class ComponentMonth(models.Model):
    """A component's calendar month of status seconds in one row: a copy of its ComponentDay rows'
    StatusSeconds, rewritten from them whenever they change (detection.rollups). The uptime bars
    read these — four rows per component for 90 days — instead of a row per component and day."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="months")
    month = models.DateField(help_text="First day of the month, in the page's time zone.")
    # Little-endian float64, five per day of the month from the 1st (SECONDS_FIELDS' order),
    # compressed with zlib (detection.rollups.seconds_pack): the same floats as ComponentDay's,
    # read at the cost of one value, not of 5 columns × 31 rows.
    seconds = models.BinaryField()

    class Meta:
        # Also serves the uptime bars: component_id IN …, month >= the window's first month.
        constraints = [models.UniqueConstraint(fields=["component", "month"], name="component_month_unique")]

    def __str__(self) -> str:
        return f"{self.component} {self.month:%Y-%m}"


class PlacementStateChange(models.Model):
    """Every change of a probe's state at a location: old, new, why, and the run that caused it."""

    placement = models.ForeignKey(ProbeLocation, on_delete=models.CASCADE, related_name="state_changes")
    old_state = models.CharField(max_length=16, choices=PlacementState.choices)
    new_state = models.CharField(max_length=16, choices=PlacementState.choices)
    cause = models.CharField(max_length=300)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField()

    class Meta:
        db_table = "probes_placementstatechange"
        # A placement's history in time order.
        indexes = [models.Index(fields=["placement", "changed_at"], name="placement_history")]


class Incident(models.Model):
    """A period when components were not operational, with its evidence-based times and timeline."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    platform = models.ForeignKey(Platform, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents")
    title = models.CharField(max_length=200)
    # A person's title is kept; an automatic one follows the evidence as the incident grows.
    title_locked = models.BooleanField(default=False)
    # An automatic title as a key and parameters (detection.texts), for pages in other languages.
    title_text = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.INVESTIGATING)
    impact = models.CharField(max_length=10, choices=Impact.choices, default=Impact.NONE)
    impact_override = models.CharField(max_length=10, choices=Impact.choices, blank=True)
    automatic = models.BooleanField(default=False)
    components = models.ManyToManyField(Component, through="IncidentComponent", related_name="incidents")
    started_at = models.DateTimeField(help_text="Start of the first failing run of the episode.")
    detected_at = models.DateTimeField(help_text="When the thresholds were met.")
    monitoring_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="Start of the first run of the recovery.")
    # The gaps to the neighbouring runs: the outage began after the last success before it, and
    # ended after the last failing run before the recovery.
    started_uncertainty_s = models.FloatField(default=0)
    resolved_uncertainty_s = models.FloatField(default=0)
    evidence = models.JSONField(default=dict, blank=True)
    postmortem_body = models.TextField(blank=True)
    postmortem_published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "probes_incident"
        ordering = ["-started_at"]
        indexes = [
            # The 50 most recent incidents (incidents.json, the feeds, a month of /history): read
            # from the index's end, however many years of incidents there are.
            models.Index(fields=["-started_at"], name="incident_recent"),
            # Unresolved incidents, newest first (/, summary.json, unresolved.json): the few open ones.
            models.Index(fields=["-started_at"], name="incident_unresolved",
                         condition=models.Q(status__in=["investigating", "identified", "monitoring"])),
            # Incidents resolved since T (/'s last 14 days, the uptime bars' 90-day window).
            models.Index(fields=["resolved_at"], name="incident_resolved"),
        ]
        constraints = [
            # One open automatic incident per platform: correlation joins it, never a second one.
            models.UniqueConstraint(fields=["platform"], condition=models.Q(automatic=True, resolved_at__isnull=True),
                                    name="one_open_automatic_incident_per_platform"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def shown_title(self) -> str:
        """The title in the language of the page being rendered: an automatic title that is not a
        person's in that language, else the title as stored."""
        from detection.texts import title_shown

        return self.title if self.title_locked else title_shown(self.title, self.title_text)

    @property
    def effective_impact(self) -> str:
        return self.impact_override or self.impact

    @property
    def duration(self):
        return (self.resolved_at - self.started_at) if self.resolved_at else None

    @property
    def time_to_detect(self):
        return self.detected_at - self.started_at

    @property
    def duration_uncertainty_s(self) -> float:
        return max(self.started_uncertainty_s, self.resolved_uncertainty_s)


class IncidentComponent(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE)
    component = models.ForeignKey(Component, on_delete=models.CASCADE)
    worst_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    # The status the timeline last reported for this component, to report each change once.
    last_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "probes_incidentcomponent"
        constraints = [models.UniqueConstraint(fields=["incident", "component"], name="component_once_per_incident")]


class IncidentUpdate(models.Model):
    """One entry of an incident's timeline; automatic ones carry the evidence."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=16, choices=IncidentStatus.choices)
    body = models.TextField()
    automatic = models.BooleanField(default=False)
    # [{"code", "name", "old_status", "new_status"}], as in Statuspage's affected_components.
    affected_components = models.JSONField(default=list, blank=True)
    # An automatic update's words as a key and parameters ({"key": "opened", "params": {…}}), so a
    # page in another language renders them (detection.texts); `body` keeps the English as written.
    text = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "probes_incidentupdate"
        ordering = ["-created_at", "-id"]
        # An incident's timeline, newest first.
        indexes = [models.Index(fields=["incident", "-created_at"], name="incident_timeline")]

    @property
    def shown_body(self) -> str:
        """The body in the language of the page being rendered: an automatic update's text in that
        language, else the body as stored."""
        from detection.texts import text_render

        return text_render(self.text, fallback=self.body)

    @property
    def shown_in_english(self) -> bool:
        """An automatic update the page shows in English (for its lang attribute)."""
        return self.automatic and self.shown_body == self.body


class Maintenance(models.Model):
    """A planned window: its components show under_maintenance and no automatic incident opens."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    components = models.ManyToManyField(Component, related_name="maintenances")
    scheduled_for = models.DateTimeField()
    scheduled_until = models.DateTimeField()
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "probes_maintenance"
        ordering = ["-scheduled_for"]
        # Active or upcoming windows (evaluation, the page).
        indexes = [models.Index(fields=["scheduled_until", "scheduled_for"], name="maintenance_window")]

    def __str__(self) -> str:
        return self.title

    def status_at(self, when) -> str:
        if when < self.scheduled_for:
            return "scheduled"
        if when < self.scheduled_until and not self.cancelled:
            return "in_progress"
        return "completed"


class OwnProblem(models.Model):
    """A problem of Vigie's own (not the platform's), for on-call: stale locations, probe budget."""

    class Kind(models.TextChoices):
        STALE_LOCATION = "stale_location", "Location sends no runs"
        PROBE_BUDGET = "probe_budget", "Probes use up the platform's write limits"
        SCHEDULER_SILENT = "scheduler_silent", "The scheduler dispatches nothing"
        PROBE_COLLISION = "probe_collision", "Vigie's own runs collided on one account"
        LOST_DELETES = "lost_deletes", "The platform loses deletes"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    subject = models.CharField(max_length=200, help_text="The location or account concerned.")
    detail = models.TextField(blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "probes_ownproblem"
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject"], condition=models.Q(resolved_at__isnull=True),
                                    name="one_open_problem_per_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"
