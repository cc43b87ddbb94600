"""Notification logic: events made once, deliveries claimed once, subscribers opted in twice.

Sending is at-least-once with an idempotency key. A delivery is claimed by a conditional UPDATE
(pending and due, or sending with an expired claim → sending), so two tasks never send it at the
same time and a delivered one is never sent again. Only a sender that dies between the far end
accepting and the row saying "delivered" causes a second send after the claim expires; webhooks
carry `Vigie-Delivery` (stable per delivery) so receivers drop that duplicate.
"""
from __future__ import annotations

import hmac
import logging
import uuid
from datetime import datetime, timedelta
from typing import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from notifications.models import (
    MAX_ERROR, PUBLIC_KINDS, Channel, ComponentRef, Delivery, Event, EventKind, EventPayload, Subscriber,
)
from detection.models import Component, IncidentStatus, IncidentUpdate, Maintenance, OwnProblem
from notifications.links import _link, _token, subscriber_links, token_hash  # noqa: F401 (used and re-exported)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 30
BACKOFF_CAP_S = 3600
# Longer than a delivery task may run (tasks.deliver's hard limit), so a live sender is never
# presumed dead.
CLAIM = timedelta(seconds=90)


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failed ones: 30 s, 60 s, 2 min … capped at 1 h."""
    return timedelta(seconds=min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S))


# --- events ----------------------------------------------------------------------------------------

def _component_refs(components: Iterable[Component]) -> list[ComponentRef]:
    return [{"code": c.public_id, "name": c.name, "status": c.status} for c in components]


def event_record(*, key: str, kind: str, payload: EventPayload, components: Iterable[Component] = ()) -> Event | None:
    """Make the event and its deliveries, once per key; enqueue the deliveries after commit.
    Returns None when the event already existed."""
    if Event.objects.filter(key=key).exists():
        return None
    try:
        with transaction.atomic():
            event = Event.objects.create(key=key, kind=kind, payload=payload)
            components = list(components)
            event.components.set(components)
            deliveries = _deliveries_make(event, components)
    except IntegrityError:  # made meanwhile by another worker (unique key)
        return None
    tasks = _tasks()
    ids = [d.id for d in deliveries]
    # robust: a broker that is down must not fail the change that made the event (which an on-call
    # person may be posting); it is logged, and deliver_due sends the deliveries once it is back.
    transaction.on_commit(lambda: [tasks.deliver.delay(i) for i in ids], robust=True)
    return event


def _deliveries_make(event: Event, components: list[Component]) -> list[Delivery]:
    rows = [Delivery(event=event, channel=channel) for channel in Channel.objects.filter(enabled=True)
            if channel.wants(event.kind)]
    if event.kind in PUBLIC_KINDS:
        subscribers = Subscriber.objects.filter(confirmed_at__isnull=False, unsubscribed_at__isnull=True)
        if components:
            # Subscribers of every component, or of one of the event's.
            subscribers = subscribers.filter(Q(components__isnull=True) | Q(components__in=components)).distinct()
        else:
            subscribers = subscribers.filter(components__isnull=True)
        rows += [Delivery(event=event, subscriber=s) for s in subscribers]
    return Delivery.objects.bulk_create(rows)


def incident_update_notify(*, update_id: int) -> Event | None:
    """The event of one incident update: opened (its first), resolved, or updated."""
    update = IncidentUpdate.objects.select_related("incident").filter(id=update_id).first()
    if update is None:
        return None
    incident = update.incident
    first = incident.updates.order_by("created_at", "id").values_list("id", flat=True).first()
    if first == update.id:
        kind = EventKind.INCIDENT_OPENED
    elif update.status == IncidentStatus.RESOLVED:
        kind = EventKind.INCIDENT_RESOLVED
    else:
        kind = EventKind.INCIDENT_UPDATED
    components = list(incident.components.order_by("position", "name"))
    payload: EventPayload = {
        "title": incident.title, "status": update.status, "body": update.body,
        "url": _link(reverse("incident", args=[incident.public_id])), "components": _component_refs(components),
        "occurred_at": update.created_at.isoformat(),
    }
    return event_record(key=f"incident-update:{update.public_id}", kind=kind, payload=payload, components=components)


def maintenance_notify(*, maintenance_id: int, phase: str) -> Event | None:
    maintenance = Maintenance.objects.filter(id=maintenance_id).first()
    if maintenance is None or phase not in ("started", "ended"):
        return None
    key = f"maintenance:{maintenance.public_id}:{phase}"
    if Event.objects.filter(key=key).exists():  # watchdog asks every 10 s
        return None
    components = list(maintenance.components.order_by("position", "name"))
    started = phase == "started"
    payload: EventPayload = {
        "title": maintenance.title, "status": "in_progress" if started else "completed",
        "body": maintenance.body if started else f"Maintenance completed: {maintenance.title}",
        "url": _link("/"), "components": _component_refs(components),
        "occurred_at": (maintenance.scheduled_for if started else maintenance.scheduled_until).isoformat(),
    }
    kind = EventKind.MAINTENANCE_STARTED if started else EventKind.MAINTENANCE_ENDED
    return event_record(key=key, kind=kind, payload=payload, components=components)


def problem_notify(*, problem_id: int) -> Event | None:
    """Vigie's own problem (stale location, probe budget), opened or resolved: on-call only."""
    problem = OwnProblem.objects.filter(id=problem_id).first()
    if problem is None:
        return None
    resolved = problem.resolved_at is not None
    key = f"problem:{problem.id}:{'resolved' if resolved else 'opened'}"
    if Event.objects.filter(key=key).exists():
        return None
    payload: EventPayload = {
        "title": str(problem), "status": "resolved" if resolved else "open",
        "body": f"Resolved: {problem.detail}" if resolved else problem.detail,
        "url": _link("/admin/detection/ownproblem/"),
        "components": [], "occurred_at": (problem.resolved_at or problem.opened_at).isoformat(),
    }
    return event_record(key=key, kind=EventKind.PROBLEM_RESOLVED if resolved else EventKind.PROBLEM_OPENED,
                        payload=payload)


def channel_test(*, channel: Channel) -> Delivery:
    """Send a test message to one channel now, recorded like any delivery."""
    payload: EventPayload = {"title": "Test notification from Vigie", "status": "test",
                             "body": f"If you can read this, the channel “{channel.name}” works.",
                             "url": _link("/"), "components": [], "occurred_at": timezone.now().isoformat()}
    event = Event.objects.create(key=f"test:{channel.id}:{uuid.uuid4().hex}", kind=EventKind.TEST, payload=payload)
    delivery = Delivery.objects.create(event=event, channel=channel)
    delivery_send(delivery_id=delivery.id)
    # A test is not retried later: it answers now.
    Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PENDING).update(status=Delivery.Status.FAILED)
    delivery.refresh_from_db()
    return delivery


# --- deliveries --------------------------------------------------------------------------------

def delivery_claim(*, delivery_id: int, now: datetime) -> bool:
    """Take the delivery for one attempt: exactly one of any number of racing callers wins."""
    due = Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now) | Q(status=Delivery.Status.SENDING,
                                                                          claimed_until__lt=now)
    return Delivery.objects.filter(due, id=delivery_id).update(
        status=Delivery.Status.SENDING, claimed_until=now + CLAIM, attempts=F("attempts") + 1) == 1


def delivery_send(*, delivery_id: int) -> str:
    """Claim the delivery, send it once, record how it went. Returns the resulting status, or
    "skipped" when it was not this caller's to send."""
    from notifications.transports import TransportError, transport_for

    now = timezone.now()
    if not delivery_claim(delivery_id=delivery_id, now=now):
        return "skipped"
    delivery = Delivery.objects.select_related("event", "channel", "subscriber").get(id=delivery_id)
    mine = Delivery.objects.filter(id=delivery.id, status=Delivery.Status.SENDING, attempts=delivery.attempts)
    target = delivery.channel or delivery.subscriber
    if (delivery.channel and not delivery.channel.enabled) or (delivery.subscriber and not delivery.subscriber.active):
        mine.update(status=Delivery.Status.CANCELLED, claimed_until=None)
        return Delivery.Status.CANCELLED
    kind = delivery.channel.kind if delivery.channel else delivery.subscriber.kind
    try:
        transport_for(kind)(delivery).send()
    except TransportError as exc:
        final = exc.permanent or delivery.attempts >= MAX_ATTEMPTS
        status = Delivery.Status.FAILED if final else Delivery.Status.PENDING
        mine.update(status=status, claimed_until=None, last_error=exc.message[:MAX_ERROR],
                    next_attempt_at=now + backoff(delivery.attempts))
        log.warning("delivery %s of %s to %s %s: %s after %s attempt(s): %s", delivery.id, delivery.event.key,
                    type(target).__name__.lower(), target.pk, status, delivery.attempts, exc.message)
        if status == Delivery.Status.FAILED and delivery.subscriber_id:
            subscriber_disable_if_failing(subscriber=delivery.subscriber)
        return status
    mine.update(status=Delivery.Status.DELIVERED, claimed_until=None, delivered_at=timezone.now())
    return Delivery.Status.DELIVERED


def subscriber_disable_if_failing(*, subscriber: Subscriber) -> bool:
    """A public subscriber whose last VIGIE_SUBSCRIBER_MAX_FAILURES finished deliveries all failed
    for good is unsubscribed (its pending deliveries cancelled), so a dead or hostile address does not
    cost a retry schedule per event forever. The log says so; the owner of a failing address cannot
    be told through it. Returns whether it was disabled now."""
    limit = settings.VIGIE_SUBSCRIBER_MAX_FAILURES
    last = list(Delivery.objects.filter(subscriber=subscriber, status__in=[Delivery.Status.DELIVERED,
                                                                           Delivery.Status.FAILED])
                .order_by("-id").values_list("status", flat=True)[:limit])
    if len(last) < limit or any(status != Delivery.Status.FAILED for status in last):
        return False
    if subscriber_unsubscribe(subscriber=subscriber):
        log.warning("subscriber %s (%s) disabled after %d deliveries in a row failed for good", subscriber.pk,
                    subscriber.kind, limit)
        return True
    return False


def deliveries_due(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Deliveries to try now: pending and due, or sending with a sender presumed dead."""
    now = now or timezone.now()
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now) \
        .order_by("next_attempt_at").values_list("id", flat=True)[:limit]
    stuck = Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_until__lt=now) \
        .values_list("id", flat=True)[:limit]
    return list(pending) + list(stuck)


# --- subscribers ---------------------------------------------------------------------------------

class _tasks:
    """notifications.tasks by registered name: the tasks import this module, not the other way."""

    def __getattr__(self, name: str):
        from celery import current_app

        return current_app.tasks[f"notifications.tasks.{name}"]


def subscriber_subscribe(*, email: str = "", url: str = "", secret: str = "",
                         components: Iterable[Component] = ()) -> Subscriber:
    """A new subscription. Email waits for confirmation (the confirmation email is enqueued);
    a webhook is active at once."""
    tasks = _tasks()
    kind = Subscriber.Kind.EMAIL if email else Subscriber.Kind.WEBHOOK
    email = email.strip().lower()
    existing = Subscriber.objects.filter(kind=Subscriber.Kind.EMAIL, email=email, unsubscribed_at__isnull=True) \
        .first() if email else None
    if existing:
        # Nobody changes a confirmed subscription by typing its address; an unconfirmed one gets
        # its confirmation again.
        if existing.confirmed_at is None:
            transaction.on_commit(lambda: tasks.send_confirmation.delay(existing.id), robust=True)
        return existing
    with transaction.atomic():
        subscriber = Subscriber(kind=kind, email=email, url=url, secret=secret)
        subscriber.confirm_hash = token_hash(_token(subscriber, "confirm"))
        subscriber.unsubscribe_hash = token_hash(_token(subscriber, "unsubscribe"))
        if kind == Subscriber.Kind.WEBHOOK:
            subscriber.confirmed_at = timezone.now()
        subscriber.save()
        subscriber.components.set(list(components))
    if kind == Subscriber.Kind.EMAIL:
        # robust: with the broker down the subscription is kept and the page answers; the failure is
        # logged, and subscribing again sends the confirmation again.
        transaction.on_commit(lambda: tasks.send_confirmation.delay(subscriber.id), robust=True)
    return subscriber


def subscriber_send_confirmation(*, subscriber_id: int) -> bool:
    from django.template.loader import render_to_string

    from notifications.transports import send_email

    subscriber = Subscriber.objects.filter(id=subscriber_id, kind=Subscriber.Kind.EMAIL, confirmed_at__isnull=True,
                                           unsubscribed_at__isnull=True).first()
    if subscriber is None:
        return False
    links = subscriber_links(subscriber=subscriber)
    text = render_to_string("notifications/email/confirm.txt", {**links, "page_name": settings.VIGIE_PAGE_NAME})
    send_email(to=subscriber.email, subject=f"Confirm your subscription to {settings.VIGIE_PAGE_NAME}", text=text,
               unsubscribe_url=links["unsubscribe"])
    return True


def subscriber_by_token(*, token: str, purpose: str) -> Subscriber | None:
    field = {"confirm": "confirm_hash", "unsubscribe": "unsubscribe_hash"}[purpose]
    subscriber = Subscriber.objects.filter(**{field: token_hash(token)}).first()
    if subscriber is None or not hmac.compare_digest(_token(subscriber, purpose), token):
        return None
    return subscriber


def subscriber_confirm(*, subscriber: Subscriber) -> bool:
    return Subscriber.objects.filter(id=subscriber.id, confirmed_at__isnull=True, unsubscribed_at__isnull=True) \
        .update(confirmed_at=timezone.now()) == 1


def subscriber_unsubscribe(*, subscriber: Subscriber) -> bool:
    """Stop everything for the subscriber, including deliveries not yet sent."""
    with transaction.atomic():
        changed = Subscriber.objects.filter(id=subscriber.id, unsubscribed_at__isnull=True) \
            .update(unsubscribed_at=timezone.now())
        Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.PENDING) \
            .update(status=Delivery.Status.CANCELLED)
    return changed == 1
