"""Web security Django leaves to us: the Content-Security-Policy, rate limits, and the client's address.

Django's SecurityMiddleware sends the other headers (settings.py, "Security"). The policy is strict:
nothing but this origin, no inline script, and inline <style> only as the exact blocks of the base
templates, allowed by their hashes, computed from the templates at start-up.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.template.loader import get_template
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

# The templates whose inline <style> blocks the policy allows; every page extends one of them.
STYLED_TEMPLATES = ("statuspage/base.html", "oncall/base.html")
STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.S)
# DRF's browsable API and the API docs page carry style attributes and an inline <style> of their
# own (not ours to hash): there, and only there, inline styles are allowed. Scripts never are.
LOOSE_STYLE_PREFIXES = ("/api/v1/", "/api/docs/")


def style_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


@lru_cache(maxsize=1)
def inline_style_hashes() -> tuple[str, ...]:
    """The CSP source of each <style> block of the base templates, as the browser hashes it."""
    hashes = []
    for name in STYLED_TEMPLATES:
        source = get_template(name).template.source
        for css in STYLE_BLOCK.findall(source):
            if "{%" in css or "{{" in css or "{#" in css:
                raise ImproperlyConfigured(f"The <style> of {name} uses template syntax: its CSP hash would "
                                           "not match what is rendered. Keep it static.")
            hashes.append(style_hash(css))
    return tuple(dict.fromkeys(hashes))


def content_security_policy(path: str = "/") -> str:
    style = "'self' 'unsafe-inline'" if path.startswith(LOOSE_STYLE_PREFIXES) else \
        " ".join(("'self'",) + inline_style_hashes())
    return "; ".join([
        "default-src 'none'",
        f"style-src {style}",
        "img-src 'self' data:",
        "script-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ])


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response that has none of its own (badges send theirs)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        inline_style_hashes()  # a template that cannot be hashed stops start-up, not a request

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request.path)
        return response


# --- The client's address --------------------------------------------------------------------

def client_ip(request: HttpRequest) -> str:
    """The address a request came from: REMOTE_ADDR, or with VIGIE_PROXY_HOPS reverse proxies in
    front, the address the outermost of them saw (counted from the right of X-Forwarded-For, the
    part a client cannot forge). IPv6 clients are counted by /64, which one client usually holds."""
    address = request.META.get("REMOTE_ADDR", "")
    hops = settings.VIGIE_PROXY_HOPS
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if parsed.version == 6:
        if parsed.ipv4_mapped:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def axes_client_ip(request: HttpRequest) -> str | None:
    """client_ip as django-axes stores it: in an IP address column (PostgreSQL's inet checks it),
    so an IPv6 client's /64 is written as its first address, and a request with no readable
    address (a test client's force_login, a broken proxy) as none rather than a word."""
    key = client_ip(request)
    try:
        return str(ipaddress.ip_network(key, strict=False).network_address)
    except ValueError:
        return None


# --- Rate limits -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RateLimit:
    allowed: bool
    retry_after_s: int


def rate_limit_hit(*, scope: str, ident: str, limit: int, window_s: int) -> RateLimit:
    """Count one attempt of `ident` in the current fixed window of `scope` (in the shared cache)."""
    now = time.time()
    window = int(now // window_s)
    key = f"ratelimit:{scope}:{ident}:{window}"
    retry_after = max(1, int((window + 1) * window_s - now))
    cache.add(key, 0, timeout=window_s + 60)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window_s + 60)
        count = 1
    return RateLimit(allowed=count <= limit, retry_after_s=retry_after)


class _TokenThrottle(SimpleRateThrottle):
    """Per API token (per address before authentication). The rate is read per request, so a test
    can lift it by overriding REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (a rate of None: no limit)."""

    safe_methods: bool

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str | None:
        if (request.method in SAFE_METHODS) != self.safe_methods:
            return None
        token = getattr(request, "auth", None)
        ident = f"token:{token.pk}" if getattr(token, "pk", None) else f"ip:{client_ip(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiReadThrottle(_TokenThrottle):
    scope = "api_read"
    safe_methods = True


class ApiWriteThrottle(_TokenThrottle):
    scope = "api_write"
    safe_methods = False
