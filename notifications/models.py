"""Notification events, channels, subscribers and deliveries.

An `Event` is one thing to tell, made once (its `key` is unique). Each event gets one `Delivery`
row per on-call `Channel` and per public `Subscriber` that wants it (unique constraints), and the
delivery row is the record of every attempt: status, attempts, next attempt, last error.
"""
from __future__ import annotations

import secrets
from typing import TypedDict

from django.db import models
from django.db.models import Q
from django.utils import timezone

from platforms.crypto import EncryptedTextField
from detection.models import Component
from probes.models import new_public_id

MAX_ERROR = 500


class EventKind(models.TextChoices):
    INCIDENT_OPENED = "incident.opened", "Incident opened"
    INCIDENT_UPDATED = "incident.updated", "Incident updated"
    INCIDENT_RESOLVED = "incident.resolved", "Incident resolved"
    MAINTENANCE_STARTED = "maintenance.started", "Maintenance started"
    MAINTENANCE_ENDED = "maintenance.ended", "Maintenance ended"
    PROBLEM_OPENED = "problem.opened", "Vigie problem opened"
    PROBLEM_RESOLVED = "problem.resolved", "Vigie problem resolved"
    # What the platform declares about an incident (official/): still silent past its source's
    # threshold, then acknowledged. On-call channels only.
    INCIDENT_UNACKNOWLEDGED = "incident.unacknowledged", "Incident not acknowledged by the platform"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged", "Incident acknowledged by the platform"
    TEST = "test", "Test message (manage.py notify test)"


# What the public hears about; Vigie's own problems go to on-call channels only.
PUBLIC_KINDS = frozenset({EventKind.INCIDENT_OPENED, EventKind.INCIDENT_UPDATED, EventKind.INCIDENT_RESOLVED,
                          EventKind.MAINTENANCE_STARTED, EventKind.MAINTENANCE_ENDED})


class ComponentRef(TypedDict):
    code: str
    name: str
    status: str


class EventPayload(TypedDict):
    """What every transport says about an event; public, so never a secret."""

    title: str
    status: str
    body: str
    url: str
    components: list[ComponentRef]
    occurred_at: str


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Event(models.Model):
    """One thing to tell. Making it twice (a task run twice, two workers) makes one row."""

    key = models.CharField(max_length=200, unique=True, help_text="e.g. incident-update:<update public id>.")
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    payload = models.JSONField(default=dict)
    # Empty: concerns no component in particular (every subscriber hears of it).
    components = models.ManyToManyField(Component, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.key


class Channel(models.Model):
    """Where on-call hears about events: an Apprise URL or a signed webhook."""

    class Kind(models.TextChoices):
        APPRISE = "apprise", "Apprise URL (Slack, Discord, Teams, Telegram, email, PagerDuty, Opsgenie…)"
        WEBHOOK = "webhook", "Webhook signed with HMAC-SHA256"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # An Apprise URL carries the service's credentials: encrypted at rest.
    url = EncryptedTextField(help_text="An Apprise URL (e.g. slack://…, tgram://…) or the webhook's https:// URL.")
    secret = EncryptedTextField(default=new_secret, blank=True, help_text="Webhooks: the HMAC signing secret.")
    event_kinds = models.JSONField(default=list, blank=True, help_text="Event kinds to send; empty for all.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    def wants(self, kind: str) -> bool:
        return self.enabled and (not self.event_kinds or kind in self.event_kinds)


class Subscriber(models.Model):
    """A member of the public: an email address (double opt-in) or a webhook URL."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    email = models.EmailField(blank=True)
    url = models.URLField(max_length=500, blank=True)
    secret = EncryptedTextField(blank=True, help_text="Webhooks: optional HMAC signing secret.")
    # Empty: every component.
    components = models.ManyToManyField(Component, blank=True, related_name="subscribers")
    # Links carry tokens derived from the server key; only their SHA-256 is stored, for lookup.
    confirm_hash = models.CharField(max_length=64, unique=True)
    unsubscribe_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(kind="email", url="") | Q(kind="webhook", email=""),
                                   name="subscriber_one_address"),
        ]
        # Who hears about an event: active subscribers (domain.event_record).
        indexes = [models.Index(fields=["confirmed_at", "unsubscribed_at"], name="subscriber_active")]

    def __str__(self) -> str:
        return self.email or self.url

    @property
    def active(self) -> bool:
        return self.confirmed_at is not None and self.unsubscribed_at is None


class Delivery(models.Model):
    """One event to one channel or subscriber, and how its attempts went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled (channel disabled or unsubscribed)"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(Subscriber, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="A sender past this is presumed dead.")
    last_error = models.CharField(max_length=MAX_ERROR, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], condition=Q(channel__isnull=False),
                                    name="one_delivery_per_channel"),
            models.UniqueConstraint(fields=["event", "subscriber"], condition=Q(subscriber__isnull=False),
                                    name="one_delivery_per_subscriber"),
            models.CheckConstraint(condition=Q(channel__isnull=False, subscriber__isnull=True)
                                   | Q(channel__isnull=True, subscriber__isnull=False),
                                   name="delivery_one_target"),
        ]
        # Due work for deliver_due: pending by next attempt, sending by expired claim.
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
                   models.Index(fields=["status", "claimed_until"], name="delivery_stuck")]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel or self.subscriber}"
