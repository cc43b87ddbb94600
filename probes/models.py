"""Vigie's records of what is watched and measured: platforms, accounts, locations, probes and
their placements, runs, artifacts, run rollups and heartbeats. What detection judges and the page
publishes (components, incidents, maintenances, …) is in detection.models.

Constants first, then models in dependency order. Every index names the query it serves.
"""
from __future__ import annotations

import secrets
import string
import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from platforms.crypto import EncryptedTextField
from platforms.vocabulary import Action, ArtifactKind, FailureClass, Outcome  # noqa: F401 (re-exported)

def url_origin(url: str) -> str:
    """scheme://host:port of `url`, lowercased, with the scheme's default port written out: where a
    platform token is allowed to go (Account.token_origin)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit((url or "").strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    return f"{parts.scheme.lower()}://{host}:{port}" if host else ""


SLUG = RegexValidator(r"^[a-z0-9][a-z0-9_-]{0,63}$", "Use 1-64 lowercase letters, digits, '-' or '_'.")


def new_public_id() -> str:
    """A 12-character lowercase id, the shape Statuspage consumers expect."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


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
    kind = models.CharField(max_length=32, help_text="Adapter kind, see platforms.adapters.REGISTRY.")
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

    def save(self, *args, **kwargs) -> None:
        """A token is bound to the origin it was stored for: when base_url moves to another origin,
        or the kind changes, the stored tokens and sessions are dropped, whichever door the change
        came through (API, admin, config). `tokens_dropped` names the accounts that lost theirs."""
        before = None
        if self.pk is not None:
            before = Platform.objects.filter(pk=self.pk).values_list("base_url", "kind").first()
        super().save(*args, **kwargs)
        self.tokens_dropped = []
        if before and (url_origin(before[0]) != url_origin(self.base_url) or before[1] != self.kind):
            held = self.accounts.exclude(token="")
            self.tokens_dropped = sorted(held.values_list("role", flat=True))
            self.accounts.update(token="", session="", token_origin="")


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
    # Where the token may be sent: the origin (scheme://host:port) of the platform's base_url when
    # the token was stored. A run whose base_url has another origin refuses to use it (runner).
    token_origin = models.CharField(max_length=320, blank=True, default="", editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "role"], name="one_account_per_role")]

    def __str__(self) -> str:
        return f"{self.username} ({self.role}) on {self.platform}"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._stored_token = instance.__dict__.get("token")
        return instance

    def save(self, *args, **kwargs) -> None:
        """A token given now (not the one loaded) is bound to the platform's current origin."""
        update_fields = kwargs.get("update_fields")
        if (update_fields is None or "token" in update_fields) and "token" in self.__dict__:
            if not self.token:
                self.token_origin = ""
            elif self.token != getattr(self, "_stored_token", None):
                self.token_origin = url_origin(Platform.objects.filter(pk=self.platform_id)
                                               .values_list("base_url", flat=True).first() or "")
            if update_fields is not None and "token_origin" not in update_fields:
                kwargs["update_fields"] = [*update_fields, "token_origin"]
        super().save(*args, **kwargs)
        if "token" in self.__dict__:
            self._stored_token = self.token

    def token_usable_for(self, base_url: str) -> bool:
        """Whether the stored token may be sent to `base_url`: it was stored for that origin."""
        return bool(self.token) and bool(self.token_origin) and self.token_origin == url_origin(base_url)


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
    # validated by platforms.adapters.scripted.script_problems. Empty for every other kind.
    script = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name


def staggered_start(location_id: int, interval_s: int, now=None):
    """When a new placement first runs: now, plus its location's share of the interval. Locations
    share the platform's test accounts, so two locations must never act on one account in the same
    slot (two follows of one partner at once break a server's unique constraint, a 500 that is
    Vigie's own doing): each location keeps its own phase of the probe's grid, the k-th of n
    locations (from 0) k/n of the interval after the first, evenly spread so that runs of one
    account are as far apart as they can be (the dispatcher keeps a placement's phase)."""
    from datetime import timedelta

    now = now or timezone.now()
    ids = list(Location.objects.order_by("id").values_list("id", flat=True))
    rank = ids.index(location_id) if location_id in ids else 0
    return now + timedelta(seconds=interval_s * rank / max(1, len(ids)))


class ProbeLocation(models.Model):
    """One probe at one location: its schedule (claimed by the dispatcher) and latest result."""

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="placements")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="placements")
    next_run_at = models.DateTimeField(default=timezone.now)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    # The evaluated state (see detection.evaluation): hysteresis counters and the evidence times
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

    Kind = ArtifactKind

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
    # The periodic sweep (probes.sweep): how many times it found this on the platform when it should
    # have been gone, and how many of its deletes the platform answered and lost (still readable).
    sweeps = models.PositiveIntegerField(default=0)
    deletes_lost = models.PositiveIntegerField(default=0)
    delete_lost_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "kind", "remote_id"], name="one_artifact_record"),
        ]
        # The cleanup retry query: not yet cleaned, attempt due.
        indexes = [models.Index(fields=["cleaned_at", "next_attempt_at"], name="artifact_cleanup_due")]

    def __str__(self) -> str:
        return f"{self.kind} {self.remote_id}"


class RunCounts(models.Model):
    """Counters of runs shared by every rollup (detection.rollups): they add up exactly, so a day is
    the sum of its hours and a component the sum of its probes' places."""

    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    by_class = models.JSONField(default=dict, help_text="Failure class → count.")
    # Bucket index (detection.rollups.bucket_of) → count; buckets merge exactly across hours and places.
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


class Heartbeat(models.Model):
    """The last sign of life of one of Vigie's own processes ("scheduler", …), written by the
    process itself and read by a watchdog that does not depend on it."""

    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class SchedulerLease(models.Model):
    """Which scheduler (celery beat process) may schedule: the one named by `holder` until
    `expires_at`. Taken and renewed by a conditional UPDATE (probes.lease), against the database's
    clock, so two schedulers on two machines never both hold it."""

    name = models.CharField(max_length=64, unique=True)
    holder = models.CharField(max_length=200)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


# What did not go as planned (dropped runs, dispatch lateness, dead letters): their own module.
from probes.losses import DispatchLateness, DropReason, DroppedRun, TaskDelivery  # noqa: E402,F401
