"""Public subscription pages: they validate, call one domain function, and say what happened.

Confirming takes a POST from the page the emailed link opens, so a mail scanner that fetches
links cannot confirm a subscription nobody asked for. Unsubscribing is one click: the page's
button, or the RFC 8058 POST a mail client sends from the List-Unsubscribe header (no CSRF token
there: the unguessable token in the URL is the proof). Subscribing sends mail and webhook requests
to addresses a stranger types in, so each client address may try it VIGIE_SUBSCRIBE_RATE times an hour.
"""
from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _, ngettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications import domain
from detection.models import Component
from statuspage.security import client_ip, rate_limit_hit

log = logging.getLogger(__name__)


class SubscribeForm(forms.Form):
    email = forms.EmailField(label=_("Email address"), required=False)
    url = forms.URLField(label=_("Or a webhook URL"), required=False, max_length=500, assume_scheme="https")
    secret = forms.CharField(label=_("Webhook signing secret (optional)"), required=False, max_length=200)
    components = forms.ModelMultipleChoiceField(
        label=_("Only these components (none ticked: all)"), required=False,
        queryset=Component.objects.order_by("position", "name"), widget=forms.CheckboxSelectMultiple)

    def clean_url(self):
        """A webhook Vigie would refuse to send to (loopback, private, link-local, the metadata
        service…) is refused now, not accepted and then failed on every event."""
        url = self.cleaned_data.get("url") or ""
        if url and not settings.VIGIE_WEBHOOK_ALLOW_PRIVATE:
            from platforms.netguard import url_refusal

            if url_refusal(url):
                raise forms.ValidationError(_("This webhook URL points at an address Vigie does not send to "
                                              "(a loopback, private or reserved address)."))
        return url

    def clean(self):
        data = super().clean()
        if bool(data.get("email")) == bool(data.get("url")):
            raise forms.ValidationError(_("Give an email address or a webhook URL (one of them)."))
        if data.get("secret") and not data.get("url"):
            raise forms.ValidationError(_("A signing secret is for webhooks only."))
        return data


@require_http_methods(["GET", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    form = SubscribeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        try:
            limit = rate_limit_hit(scope="subscribe", ident=client_ip(request), limit=settings.VIGIE_SUBSCRIBE_RATE,
                                   window_s=3600)
        except Exception:  # the cache is down: without the rate limit, strangers could mail anyone at will
            log.warning("subscription refused: the cache that rate-limits it is unreachable", exc_info=True)
            form.add_error(None, _("Subscriptions are unavailable right now. Please try again later."))
            response = render(request, "notifications/subscribe.html", {"form": form}, status=503)
            response["Retry-After"] = "300"
            return response
        if not limit.allowed:
            minutes = -(-limit.retry_after_s // 60)
            form.add_error(None, ngettext(
                "Too many subscription attempts from your address. Please try again in %(minutes)d minute.",
                "Too many subscription attempts from your address. Please try again in %(minutes)d minutes.",
                minutes) % {"minutes": minutes})
            response = render(request, "notifications/subscribe.html", {"form": form}, status=429)
            response["Retry-After"] = str(limit.retry_after_s)
            return response
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        subscriber = domain.subscriber_subscribe(email=data["email"], url=data["url"], secret=data["secret"],
                                                 components=data["components"])
        # The same answer whether or not the address was already subscribed.
        return render(request, "notifications/subscribed.html", {"email": bool(data["email"]),
                                                                 "webhook": subscriber.url if data["url"] else ""})
    return render(request, "notifications/subscribe.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = domain.subscriber_by_token(token=token, purpose="confirm")
    if subscriber is None or subscriber.unsubscribed_at:
        return render(request, "notifications/link_invalid.html", status=404)
    done = subscriber.confirmed_at is not None
    if request.method == "POST":
        domain.subscriber_confirm(subscriber=subscriber)
        done = True
    return render(request, "notifications/confirm.html", {"subscriber": subscriber, "done": done})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = domain.subscriber_by_token(token=token, purpose="unsubscribe")
    if subscriber is None:
        return render(request, "notifications/link_invalid.html", status=404)
    done = subscriber.unsubscribed_at is not None
    if request.method == "POST":
        domain.subscriber_unsubscribe(subscriber=subscriber)
        done = True
    return render(request, "notifications/unsubscribe.html", {"subscriber": subscriber, "done": done})
