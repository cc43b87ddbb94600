"""Rows for what did not go as planned: runs that were due and not performed (DroppedRun), how late
runs started after their slot (DispatchLateness), and task messages being worked on or set aside
(TaskDelivery, the dead letters). Imported by probes.models, so Django finds them there.

Counts are per hour, so the tables grow with hours × probes × reasons, not with runs.
"""
from __future__ import annotations

from django.db import models


class DropReason(models.TextChoices):
    # The run reached a worker after its slot was over (the message waited, or its worker died).
    EXPIRED = "expired", "expired before a worker started it"
    # The broker or the worker discarded the message itself (its `expires` passed in the queue).
    MESSAGE_EXPIRED = "message_expired", "message expired in the queue"
    # The dispatcher was behind (down, or too slow) and jumped over slots instead of bursting.
    SKIPPED = "skipped", "slot skipped by a late dispatcher"
    # The message kept crashing its worker and was set aside (TaskDelivery).
    DEAD_LETTER = "dead_letter", "message set aside as poison"


class DroppedRun(models.Model):
    """How many runs of a probe at a location were due in one hour and not performed, and why."""

    probe = models.ForeignKey("probes.Probe", on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey("probes.Location", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=20, choices=DropReason.choices)
    hour = models.DateTimeField(help_text="Start of the hour (UTC) the runs were due in.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        # Serves the increment (probe, location, reason, hour) and "drops since T" (hour >= T).
        constraints = [models.UniqueConstraint(fields=["probe", "location", "reason", "hour"],
                                               name="dropped_run_unique")]
        indexes = [models.Index(fields=["hour"], name="dropped_run_hour")]

    def __str__(self) -> str:
        return f"{self.count} {self.reason} run(s) of probe {self.probe_id} @ {self.location_id} {self.hour:%Y-%m-%d %H}h"


class DispatchLateness(models.Model):
    """How late runs started after their slot (started_at − scheduled_for) at one location in one
    hour: one row per bucket of fixed bounds (probes.drops.LATENESS_BOUNDS_S), so that storing runs
    only ever adds to counters (UPDATE … SET runs = runs + n), never rewrites a histogram."""

    location = models.ForeignKey("probes.Location", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="Start of the hour (UTC) of the runs' slots.")
    bucket = models.PositiveSmallIntegerField(help_text="Index of the first bound at or above the lateness.")
    runs = models.PositiveIntegerField(default=0)
    total_ms = models.BigIntegerField(default=0, help_text="Sum of these runs' lateness, in ms.")

    class Meta:
        # Serves the increment (location, hour, bucket) and "lateness since T" (hour >= T).
        constraints = [models.UniqueConstraint(fields=["location", "hour", "bucket"], name="dispatch_lateness_unique")]
        indexes = [models.Index(fields=["hour"], name="dispatch_lateness_hour")]

    def __str__(self) -> str:
        return f"{self.runs} run(s) @ {self.location_id} {self.hour:%Y-%m-%d %H}h bucket {self.bucket}"


class TaskDelivery(models.Model):
    """A task message while a worker works on it: how many times it was delivered, the last error.
    Deleted when the task ends; one delivered too often (a poison message: it raises, or kills its
    worker, every time) stays as a dead letter for on-call to retry or discard."""

    class State(models.TextChoices):
        ACTIVE = "active", "being worked on"
        DEAD = "dead", "set aside"

    task_id = models.CharField(max_length=64, unique=True)
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=200, blank=True)
    args = models.JSONField(default=list, help_text="Redacted.")
    kwargs = models.JSONField(default=dict, help_text="Redacted.")
    retryable = models.BooleanField(default=True, help_text="False when redaction changed the arguments.")
    deliveries = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, help_text="Redacted and truncated.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    dead_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Serves the dashboard's and the metrics' "dead letters" and the pruning of stale active rows.
        indexes = [models.Index(fields=["state", "last_seen_at"], name="task_delivery_state")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id} ({self.deliveries} deliveries, {self.state})"
