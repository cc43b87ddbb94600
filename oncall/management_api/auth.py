"""Bearer-token authentication and the read/write scope check of the management API."""
from __future__ import annotations

import hmac
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from statuspage.models import ApiToken, apitoken_digest

# last_used_at is written at most this often per token: one UPDATE a minute, not one per request.
LAST_USED_RESOLUTION_S = 60


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer vigie_<prefix>_<secret>`; the user is the token's (or anonymous)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            plain = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        digest = apitoken_digest(plain)
        token = ApiToken.objects.filter(digest=digest).select_related("user").first()
        # The lookup is by digest; comparing again in constant time costs nothing and keeps the
        # check independent of how the database compares strings.
        if token is None or not hmac.compare_digest(token.digest, digest):
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token has been revoked.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= LAST_USED_RESOLUTION_S:
            cutoff = now - timedelta(seconds=LAST_USED_RESOLUTION_S)
            ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff), id=token.id) \
                .update(last_used_at=now)
            token.last_used_at = now
        return (token.user, token)

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return f'{self.keyword} realm="api"'


class TokenScope(permissions.BasePermission):
    """Reads need any valid token; writes need a `write` token."""

    message = "This token is read-only: writing needs a token with the 'write' scope."

    def has_permission(self, request, view):
        token = request.auth
        if not isinstance(token, ApiToken):
            # Not authenticated: DRF turns this into a 401 with the WWW-Authenticate header.
            raise exceptions.NotAuthenticated()
        if request.method in permissions.SAFE_METHODS:
            return True
        return token.can_write


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "oncall.management_api.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A token from `manage.py apitoken create NAME --scope read|write`."}
