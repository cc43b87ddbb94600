"""Vigie's records of what is watched and what happened: platforms, probes, runs, components.

Constants first, then models in dependency order. Every index names the query it serves.
"""
from __future__ import annotations

import secrets
import string
import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from probes.crypto import EncryptedTextField

SLUG = RegexValidator(r"^[a-z0-9][a-z0-9_-]{0,63}$", "Use 1-64 lowercase letters, digits, '-' or '_'.")


class Action(models.TextChoices):
    POST = "post", "Post"
    REPOST = "repost", "Repost"
    FOLLOW = "follow", "Follow"
    DM = "dm", "Direct message"
    READ = "read", "Read timeline"
    LIMITS = "limits", "Limits enforced"


class FailureClass(models.TextChoices):
    TIMEOUT = "timeout"
    CONNECT = "connect"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    READ_ONLY = "read_only"
    AUTH = "auth"
    REJECTED = "rejected"
    INVARIANT = "invariant"
    UNEXPECTED = "unexpected"


class Outcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class ComponentStatus(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED = "degraded_performance", "Degraded performance"
    PARTIAL = "partial_outage", "Partial outage"
    MAJOR = "major_outage", "Major outage"
    MAINTENANCE = "under_maintenance", "Under maintenance"
    # Nothing measured: no run yet, no probe enabled, or no fresh run. Never shown as health, and
    # its time is not observed: uptime is counted over measured time only.
    UNKNOWN = "unknown", "No data"


def new_public_id() -> str:
    """A 12-character lowercase id, the shape Statuspage consumers expect."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


# Worse is higher: how statuses compare when a component's incident grows or recovers.
STATUS_SEVERITY = {
    ComponentStatus.OPERATIONAL: 0, ComponentStatus.MAINTENANCE: 0, ComponentStatus.UNKNOWN: 0, ComponentStatus.DEGRADED: 1,
    ComponentStatus.PARTIAL: 2, ComponentStatus.MAJOR: 3,
}
OUTAGE_STATUSES = (ComponentStatus.PARTIAL, ComponentStatus.MAJOR)
# A second of partial outage counts as this much downtime (probes.uptime states the formula).
PARTIAL_WEIGHT = 0.3


class PlacementState(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    UP = "up", "Up"
    DEGRADED = "degraded", "Degraded"
    FAILING = "failing", "Failing"


# Seconds a platform may take to make an accepted action effective, unless its config says.
DEFAULT_SETTLE_S = 5.0

# How many latest runs the flap detector looks at, and how many outcome changes among them
# make a placement flapping (and how few end it).
FLAP_WINDOW = 10
FLAP_ENTER_CHANGES = 4
FLAP_EXIT_CHANGES = 2


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


class Location(models.Model):
    """Where probes run from: served by the workers that consume queue `probes.<name>`."""

    name = models.CharField(max_length=64, unique=True, validators=[SLUG])
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return f"probes.{self.name}"


class Platform(models.Model):
    """A watched service: an adapter kind and a base URL."""

    name = models.CharField(max_length=100)
    slug = models.CharField(max_length=64, unique=True, validators=[SLUG])
    kind = models.CharField(max_length=32, help_text="Adapter kind, see probes.adapters.REGISTRY.")
    base_url = models.URLField(max_length=300)
    enabled = models.BooleanField(default=True)
    # How long an accepted action may take to become effective (a follow completed by a background
    # worker, as on Takahē): only a result still wrong after this is an `invariant` failure.
    settle_s = models.FloatField(default=DEFAULT_SETTLE_S, validators=[MinValueValidator(0), MaxValueValidator(60)],
                                 help_text="Seconds an accepted action may take to become effective.")
    # The platform's own per-account write limits, {family: [limit, period_s]}: {} for none (a
    # self-hosted server without mastodon.social's limits); null for the kind's documented ones.
    write_limits = models.JSONField(null=True, blank=True, default=None,
                                    help_text="Empty: the kind's documented limits; {} none.")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A test account on a platform; follow and DM need two: a prober and its partner."""

    class Role(models.TextChoices):
        PROBER = "prober"
        PARTNER = "partner"

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="accounts")
    role = models.CharField(max_length=16, choices=Role.choices)
    username = models.CharField(max_length=100)
    token = EncryptedTextField(help_text="Stored encrypted; never shown again.")
    # The platform's own id for the account, learnt once from verify_credentials.
    remote_id = models.CharField(max_length=100, blank=True)
    # A long-lived post of this account that repost probes reblog, made once and kept (re-made if
    # it disappears): reposting is then tested without posting, so a posting outage does not
    # show as a reposting one, and each repost run writes half as much.
    fixture_id = models.CharField(max_length=200, blank=True)
    # A platform session kept between runs (e.g. Bluesky's access and refresh tokens, as JSON):
    # hosted services allow few logins a day, so a session is created once and refreshed.
    session = EncryptedTextField(blank=True, default="", help_text="Stored encrypted; never shown.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "role"], name="one_account_per_role")]

    def __str__(self) -> str:
        return f"{self.username} ({self.role}) on {self.platform}"


class Probe(models.Model):
    """An action on a platform, on a schedule, from a set of locations."""

    name = models.CharField(max_length=100)
    slug = models.CharField(max_length=64, unique=True, validators=[SLUG])
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="probes")
    action = models.CharField(max_length=16, choices=Action.choices)
    interval_s = models.PositiveIntegerField(default=60, validators=[MinValueValidator(5)])
    timeout_s = models.FloatField(default=10.0, validators=[MinValueValidator(0.5), MaxValueValidator(90)])
    latency_threshold_ms = models.PositiveIntegerField(default=2000)
    failure_threshold = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1)])
    success_threshold = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1)])
    quorum = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Failing locations that make a major outage; empty means a majority of the reporting ones.")
    enabled = models.BooleanField(default=True)
    locations = models.ManyToManyField(Location, through="ProbeLocation", related_name="probes")
    # Scripted HTTP probes (platform kind "http"): steps, assertions, extractions and cleanup steps,
    # validated by probes.adapters.scripted.script_problems. Empty for every other kind.
    script = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name


class ProbeLocation(models.Model):
    """One probe at one location: its schedule (claimed by the dispatcher) and latest result."""

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="placements")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="placements")
    next_run_at = models.DateTimeField(default=timezone.now)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    # The evaluated state (see probes.evaluation): hysteresis counters and the evidence times
    # an incident's start, detection and end are read from.
    state = models.CharField(max_length=16, choices=PlacementState.choices, default=PlacementState.UNKNOWN)
    state_since = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    consecutive_successes = models.PositiveIntegerField(default=0)
    consecutive_slow = models.PositiveIntegerField(default=0)
    consecutive_fast = models.PositiveIntegerField(default=0)
    # Outcomes of the latest runs, newest last ("S", "F"): the flap detector's window.
    recent = models.CharField(max_length=FLAP_WINDOW, blank=True)
    flapping = models.BooleanField(default=False)
    evaluated_until = models.DateTimeField(null=True, blank=True, help_text="Start of the latest evaluated run.")
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    streak_started_at = models.DateTimeField(null=True, blank=True, help_text="First failing run of the streak.")
    streak_previous_success_at = models.DateTimeField(null=True, blank=True)
    recovery_started_at = models.DateTimeField(null=True, blank=True, help_text="First success after failures.")
    detected_at = models.DateTimeField(null=True, blank=True, help_text="When the failure threshold was met.")
    last_failure_class = models.CharField(max_length=20, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["probe", "location"], name="one_placement")]
        # The dispatcher's query: placements whose next_run_at has come.
        indexes = [models.Index(fields=["next_run_at"], name="placement_due")]

    def __str__(self) -> str:
        return f"{self.probe} @ {self.location}"


class Run(models.Model):
    """One execution of one probe at one location, with its steps and evidence."""

    class Cleanup(models.TextChoices):
        NONE = "none", "Nothing to clean"
        DONE = "done", "Cleaned up"
        PENDING = "pending", "Cleanup pending"

    # Chosen by the dispatcher and carried by the task: a retried task records nothing twice.
    key = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="runs")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="runs")
    scheduled_for = models.DateTimeField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(help_text="Time of the action's steps, cleanup excluded.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    failure_class = models.CharField(max_length=20, choices=FailureClass.choices, blank=True)
    error = models.CharField(max_length=500, blank=True)
    steps = models.JSONField(default=list)
    evidence = models.JSONField(default=dict)
    cleanup = models.CharField(max_length=16, choices=Cleanup.choices, default=Cleanup.NONE)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Latest runs of a probe at a location (dashboard cells, evaluation).
        indexes = [models.Index(fields=["probe", "location", "-started_at"], name="run_latest")]

    def __str__(self) -> str:
        return f"{self.probe} @ {self.location} {self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class Artifact(models.Model):
    """Something a probe created on a platform; recorded before cleanup, cleaned until it is gone."""

    class Kind(models.TextChoices):
        STATUS = "status"
        REBLOG = "reblog"
        FOLLOW = "follow"
        DIRECT_MESSAGE = "direct_message"
        SCRIPTED = "scripted"  # what a scripted probe's cleanup step removes; remote_id names the step

    run_key = models.UUIDField(help_text="The run that created it (recorded before the run is).")
    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="artifacts")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    remote_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    cleaned_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "kind", "remote_id"], name="one_artifact_record"),
        ]
        # The cleanup retry query: not yet cleaned, attempt due.
        indexes = [models.Index(fields=["cleaned_at", "next_attempt_at"], name="artifact_cleanup_due")]

    def __str__(self) -> str:
        return f"{self.kind} {self.remote_id}"


class RunCounts(models.Model):
    """Counters of runs shared by every rollup (probes.rollups): they add up exactly, so a day is
    the sum of its hours and a component the sum of its probes' places."""

    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    by_class = models.JSONField(default=dict, help_text="Failure class → count.")
    # Bucket index (probes.rollups.bucket_of) → count; buckets merge exactly across hours and places.
    latency = models.JSONField(default=dict)

    class Meta:
        abstract = True


class RunHour(RunCounts):
    """Rollup of a probe's runs at one location within one hour: counts, failures by class and a
    latency histogram of the successful runs. Response-time charts read these, never raw runs."""

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="hours")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="Start of the hour (UTC).")

    class Meta:
        # Also serves "a component's probes' hours since T" (probe_id IN …, hour >= T).
        constraints = [models.UniqueConstraint(fields=["probe", "location", "hour"], name="run_hour_unique")]

    def __str__(self) -> str:
        return f"{self.probe} @ {self.location} {self.hour:%Y-%m-%d %H}h: {self.runs} runs"


class RunDay(RunCounts):
    """RunHour's counters over a calendar day of the page's time zone (settings.TIME_ZONE)."""

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="days")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="Calendar day in the page's time zone.")

    class Meta:
        # Also serves "a probe's days since D" (probe_id IN …, day >= D).
        constraints = [models.UniqueConstraint(fields=["probe", "location", "day"], name="run_day_unique")]

    def __str__(self) -> str:
        return f"{self.probe} @ {self.location} {self.day}: {self.runs} runs"


class ComponentGroup(models.Model):
    """A heading that gathers components ("Writes"); in Statuspage JSON, a component with
    `group: true` whose status is the worst of its members'."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Component(models.Model):
    """What the public sees ("Posting"), fed by one or more probes."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=100)
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
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


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
        # A component's history in time order (uptime, history page).
        indexes = [models.Index(fields=["component", "changed_at"], name="component_history")]


class StatusSeconds(models.Model):
    """Seconds a component spent in each status, counted from its status changes (probes.rollups);
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
        """Weighted downtime, the numerator of probes.uptime's formula."""
        return self.major_s + PARTIAL_WEIGHT * self.partial_s


class ComponentHour(RunCounts, StatusSeconds):
    """A component's hour (UTC): its probes' runs at every location, and its status seconds."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="hours")
    hour = models.DateTimeField(help_text="Start of the hour (UTC).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["component", "hour"], name="component_hour_unique")]

    def __str__(self) -> str:
        return f"{self.component} {self.hour:%Y-%m-%d %H}h"


class ComponentDay(RunCounts, StatusSeconds):
    """A component's calendar day in the page's time zone: what the uptime bars read."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="days")
    day = models.DateField(help_text="Calendar day in the page's time zone.")

    class Meta:
        # Also serves the uptime bars: component_id IN …, day >= the window's first.
        constraints = [models.UniqueConstraint(fields=["component", "day"], name="component_day_unique")]

    def __str__(self) -> str:
        return f"{self.component} {self.day}"


class PlacementStateChange(models.Model):
    """Every change of a probe's state at a location: old, new, why, and the run that caused it."""

    placement = models.ForeignKey(ProbeLocation, on_delete=models.CASCADE, related_name="state_changes")
    old_state = models.CharField(max_length=16, choices=PlacementState.choices)
    new_state = models.CharField(max_length=16, choices=PlacementState.choices)
    cause = models.CharField(max_length=300)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField()

    class Meta:
        # A placement's history in time order.
        indexes = [models.Index(fields=["placement", "changed_at"], name="placement_history")]


class Incident(models.Model):
    """A period when components were not operational, with its evidence-based times and timeline."""

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    platform = models.ForeignKey(Platform, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents")
    title = models.CharField(max_length=200)
    # A person's title is kept; an automatic one follows the evidence as the incident grows.
    title_locked = models.BooleanField(default=False)
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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        # An incident's timeline, newest first.
        indexes = [models.Index(fields=["incident", "-created_at"], name="incident_timeline")]


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

    kind = models.CharField(max_length=20, choices=Kind.choices)
    subject = models.CharField(max_length=200, help_text="The location or account concerned.")
    detail = models.TextField(blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject"], condition=models.Q(resolved_at__isnull=True),
                                    name="one_open_problem_per_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class Heartbeat(models.Model):
    """The last sign of life of one of Vigie's own processes ("scheduler", …), written by the
    process itself and read by a watchdog that does not depend on it."""

    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
