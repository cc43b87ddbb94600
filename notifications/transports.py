"""How a delivery leaves Vigie: Apprise URLs, signed webhooks, email. One class per kind.

A transport's `send(delivery)` returns when the far end accepted the message and raises
`TransportError` otherwise, saying whether trying again could help. Error messages are redacted
of the target's secrets before they leave the transport (they end up in `Delivery.last_error`).
"""
from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import logging
import re
import threading
import time

import requests
import urllib3
from django.conf import settings
from django.core.mail import BadHeaderError, EmailMessage
from django.template.loader import render_to_string
from django.utils.module_loading import import_string

from notifications.models import Delivery, Event
from statuspage.sanitize import clean_text
from platforms.netguard import (
    EVERYWHERE, SocketWatch, TargetRefused, guarded_session, guarded_context, no_allowance, settings_allowance,
)

log = logging.getLogger(__name__)

REGISTRY = {
    "apprise": "notifications.transports.AppriseTransport",
    "webhook": "notifications.transports.WebhookTransport",
    "email": "notifications.transports.EmailTransport",
}
TIMEOUT_S = 10
# A webhook receiver gets this long in all to answer, however slowly it drips its bytes.
DEADLINE_S = 20
USER_AGENT = "Vigie-Notifications/1"
SIGNATURE_HEADER = "Vigie-Signature"


class TransportError(Exception):
    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def transport_for(kind: str) -> type[Transport]:
    try:
        return import_string(REGISTRY[kind])
    except KeyError:
        close = difflib.get_close_matches(kind, REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown notification transport {kind!r}.{hint} Known: {', '.join(REGISTRY)}.") from None


def secret_parts(url: str) -> list[str]:
    """The parts of a URL that may be credentials: the whole URL, user, password, and every path,
    host or query piece long enough to be a token. Over-redacting a host name costs little."""
    parts = [url]
    rest = url.split("://", 1)[-1]
    for piece in re.split(r"[/:@?&=#,]", rest):
        if len(piece) >= 6 and not re.fullmatch(r"[\w-]+(\.[\w-]+)+|\d+", piece):
            parts.append(piece)
    return parts


def redact(text: str, secrets: list[str]) -> str:
    """platforms.http.redact (any case, spacing or escaping of a secret), marked "***" here."""
    from platforms.http import redact as redact_secrets

    return redact_secrets(text, secrets, marker="***")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Vigie-Signature header value (Stripe's scheme; see docs/webhooks.md)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def message(event: Event) -> tuple[str, str]:
    """Title and plain-text body of an event, for chat and email."""
    p = event.payload
    lines = [p.get("body", "")]
    if p.get("components"):
        lines.append("Components: " + ", ".join(f"{c['name']} ({c['status'].replace('_', ' ')})"
                                                 for c in p["components"]))
    if p.get("url"):
        lines.append(p["url"])
    status = p.get("status", "").replace("_", " ")
    title = f"[{status}] {p.get('title', '')}" if status else p.get("title", "")
    return title, "\n\n".join(line for line in lines if line)


class Transport:
    """Base: sends one delivery. `secrets` lists what must never appear in an error."""

    kind = ""

    def __init__(self, delivery: Delivery):
        self.delivery = delivery
        self.event = delivery.event

    @property
    def secrets(self) -> list[str]:
        return []

    def send(self) -> None:
        raise NotImplementedError

    def fail(self, text: str, *, permanent: bool = False) -> TransportError:
        return TransportError(redact(text, self.secrets)[:400], permanent=permanent)


class AppriseTransport(Transport):
    kind = "apprise"

    @property
    def secrets(self) -> list[str]:
        return secret_parts(self.delivery.channel.url)

    def send(self) -> None:
        import apprise

        problem = apprise_scheme_problem(self.delivery.channel.url)
        if problem:
            raise self.fail(problem, permanent=True)
        # Apprise's plugins make their own requests calls, and smtplib (mailto://) its own
        # socket.create_connection: guarded_context sends both through the SSRF guard at connect
        # time. Apprise's own timeout bounds the whole send.
        notifier = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        if not notifier.add(self.delivery.channel.url):
            raise self.fail("Apprise does not understand this URL (see https://github.com/caronc/apprise/wiki).",
                            permanent=True)
        title, body = message(self.event)
        with apprise.LogCapture(level=logging.WARNING, fmt="%(levelname)s %(message)s") as captured:
            with guarded_context(settings_allowance) as guard:
                sent = notifier.notify(title=title, body=body, timeout=DEADLINE_S)
            output = captured.getvalue()
        if guard.refused:  # Apprise reports it only as "raised an exception"
            raise self.fail(f"refused by the SSRF guard: {guard.refused[0]}", permanent=True)
        if not sent:
            if _scheme(self.delivery.channel.url) not in HTTP_APPRISE_SCHEMES:
                # Connection refused, a timeout, or a banner that is not SMTP would tell apart a closed
                # port from an open one: for socket schemes the text is the same whatever happened.
                log.info("apprise %s delivery failed: %s", _scheme(self.delivery.channel.url),
                         redact(_last_lines(output), self.secrets))
                raise self.fail(UNIFORM_FAILURE)
            raise self.fail("Apprise could not send: " + (_last_lines(output) or "no detail"))


# Apprise schemes whose plugins speak HTTP(S) through requests (guarded per connection, with their
# own errors); the others open sockets (mailto:// through smtplib) and fail with UNIFORM_FAILURE.
HTTP_APPRISE_SCHEMES = frozenset({
    "json", "jsons", "xml", "xmls", "form", "forms", "slack", "discord", "msteams", "tgram", "pover", "ntfy",
    "ntfys", "gotify", "gotifys", "matrix", "matrixs", "mmost", "mmosts", "rocket", "rockets", "pagerduty",
    "opsgenie", "signal", "signals", "zulip", "workflow", "workflows", "apprise", "apprises", "ifttt", "join",
    "pbul", "pushed", "spush", "twist", "webexteams", "wxteams", "lametric", "lametrics", "bark", "barks",
})
UNIFORM_FAILURE = "Apprise could not send: the target did not take the message (no detail for this scheme)"


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def apprise_scheme_problem(url: str) -> str | None:
    """Why this Apprise URL may not be used (its scheme is not in VIGIE_NOTIFY_SCHEMES), or None."""
    scheme = _scheme(url)
    allowed = settings.VIGIE_NOTIFY_SCHEMES
    if scheme in allowed:
        return None
    return (f"The Apprise scheme {scheme or '(none)'}:// is not allowed here; allowed: {', '.join(sorted(allowed))} "
            "(setting VIGIE_NOTIFY_SCHEMES).")


def _last_lines(output: str) -> str:
    return " | ".join([line for line in output.strip().splitlines() if line][-3:])


class WebhookTransport(Transport):
    """POST of the event as JSON, signed when a secret is set, with the delivery id for dedupe."""

    kind = "webhook"

    @property
    def target(self):
        return self.delivery.channel or self.delivery.subscriber

    @property
    def secrets(self) -> list[str]:
        return [self.target.secret, *secret_parts(self.target.url)] if self.target.secret else \
            secret_parts(self.target.url)

    def body(self) -> bytes:
        document = {"id": self.event.key, "type": self.event.kind, "created_at": self.event.created_at.isoformat(),
                    "delivery": str(self.delivery.id), "data": self.event.payload}
        if self.delivery.subscriber_id:
            from notifications.links import subscriber_links

            document["unsubscribe_url"] = subscriber_links(subscriber=self.delivery.subscriber)["unsubscribe"]
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    def send(self) -> None:
        url = self.target.url
        body = self.body()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Vigie-Delivery": str(self.delivery.id), "Vigie-Event": self.event.key,
                   "Idempotency-Key": f"vigie-{self.delivery.id}"}
        if self.target.secret:
            headers[SIGNATURE_HEADER] = sign(self.target.secret, body, int(time.time()))
        # A total deadline, not only socket timeouts: at DEADLINE_S the socket is cut under the
        # reader, so a receiver dripping a byte a second cannot hold a delivery worker.
        watch, cut = SocketWatch(), threading.Event()
        timer = threading.Timer(DEADLINE_S, lambda: (cut.set(), watch.cut()))
        timer.daemon = True
        timer.start()
        try:
            with guarded_session(allowed=self.allowance(), on_socket=watch.add) as session:
                response = session.post(url, data=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False,
                                        stream=True)
                with response:
                    if 200 <= response.status_code < 300:
                        return
                    # Only the start of the answer is read: a hostile receiver may send gigabytes.
                    text = response.raw.read(2048, decode_content=True).decode("utf-8", "replace")
                if cut.is_set():
                    raise self.fail(f"no complete answer within {DEADLINE_S} s (total deadline)")
        except TargetRefused as exc:
            raise self.fail(f"refused by the SSRF guard: {exc}", permanent=True) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if cut.is_set():
                raise self.fail(f"no complete answer within {DEADLINE_S} s (total deadline)") from None
            raise self.fail(f"{type(exc).__name__}: {exc}") from None
        finally:
            timer.cancel()
        # 4xx other than timeouts and rate limits will not change by asking again.
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 409, 425, 429)
        raise self.fail(f"HTTP {response.status_code}: {text[:200]}", permanent=permanent)

    def allowance(self):
        """The SSRF guard's allowance: staff channels get VIGIE_ALLOW_PRIVATE_TARGETS; public
        subscribers get none, unless VIGIE_WEBHOOK_ALLOW_PRIVATE opens every address to them."""
        if not self.delivery.subscriber_id:
            return settings_allowance
        return (lambda: EVERYWHERE) if settings.VIGIE_WEBHOOK_ALLOW_PRIVATE else no_allowance


class EmailTransport(Transport):
    """A plain-text email with a one-click unsubscribe link and List-Unsubscribe (RFC 8058)."""

    kind = "email"

    def send(self) -> None:
        from notifications.links import subscriber_links

        subscriber = self.delivery.subscriber
        links = subscriber_links(subscriber=subscriber)
        title, body = message(self.event)
        text = render_to_string("notifications/email/event.txt",
                                {"title": title, "body": body, "unsubscribe_url": links["unsubscribe"],
                                 "page_name": settings.VIGIE_PAGE_NAME})
        send_email(to=subscriber.email, subject=title, text=text, unsubscribe_url=links["unsubscribe"],
                   transport=self)


def send_email(*, to: str, subject: str, text: str, unsubscribe_url: str | None, transport: Transport | None = None
               ) -> None:
    headers = {"Auto-Submitted": "auto-generated"}
    if unsubscribe_url:
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Headers are built from sanitized values: a newline in an incident title would make Django
    # raise BadHeaderError, and a message that cannot be built fails for good, not on every retry.
    subject = header_value(subject)[:200]
    if not to or header_value(to) != to:
        error = "the address cannot be written in an email header (it holds a line break or control character)"
        raise (transport.fail(error, permanent=True) if transport else TransportError(error, permanent=True))
    email = EmailMessage(subject=subject, body=clean_text(text), to=[to], headers=headers)
    try:
        email.send(fail_silently=False)
    except BadHeaderError as exc:
        error = f"the message cannot be built: {exc}"
        raise (transport.fail(error, permanent=True) if transport else TransportError(error[:400], permanent=True)
               ) from None
    except (OSError, ValueError) as exc:  # smtplib errors are OSErrors
        error = f"{type(exc).__name__}: {exc}"
        raise (transport.fail(error) if transport else TransportError(error[:400])) from None


def header_value(text: str) -> str:
    """One line, no control characters: what may go into an email header."""
    return " ".join(clean_text(text).split())
