"""A subscriber's confirm and unsubscribe links, and the public links events carry. Used by the
domain and by the transports (which the domain imports), so neither imports the other for them."""
from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.urls import reverse

from notifications.models import Subscriber


def _link(path: str) -> str:
    return settings.VIGIE_PUBLIC_URL + path


def _token(subscriber: Subscriber, purpose: str) -> str:
    key = (settings.VIGIE_ENCRYPTION_KEY or settings.SECRET_KEY).encode()
    return hmac.new(key, f"vigie-subscriber:{purpose}:{subscriber.public_id}".encode(), hashlib.sha256).hexdigest()[:40]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def subscriber_links(*, subscriber: Subscriber) -> dict[str, str]:
    """The confirm and unsubscribe links. Their tokens are derived from the server key, so a
    database copy alone cannot unsubscribe anybody; after a key change the stored hashes follow."""
    confirm, unsubscribe = _token(subscriber, "confirm"), _token(subscriber, "unsubscribe")
    hashes = {"confirm_hash": token_hash(confirm), "unsubscribe_hash": token_hash(unsubscribe)}
    if any(getattr(subscriber, k) != v for k, v in hashes.items()):
        Subscriber.objects.filter(id=subscriber.id).update(**hashes)
        for k, v in hashes.items():
            setattr(subscriber, k, v)
    return {"confirm": _link(reverse("notifications:confirm", args=[confirm])),
            "unsubscribe": _link(reverse("notifications:unsubscribe", args=[unsubscribe]))}
