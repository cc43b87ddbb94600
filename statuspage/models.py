"""Records of the web-facing side: the management API's tokens, and the functions that make and
revoke them (the token itself is shown once and never stored)."""
from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "vigie_"
PREFIX_LENGTH = 8


class ApiToken(models.Model):
    """A bearer token of the management API: `read` reads everything, `write` may change it too."""

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    # Shown in lists to tell tokens apart; unique so that `revoke PREFIX` names exactly one token.
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    # SHA-256 of the whole token: every authenticated request looks a token up by it.
    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="api_tokens")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.WRITE


def apitoken_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def apitoken_create(*, name: str, scope: str, user=None) -> tuple[ApiToken, str]:
    """Make a token; returns the row and the plain token, which is not kept anywhere."""
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"scope must be one of {', '.join(ApiToken.Scope.values)}, not {scope!r}")
    while True:
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        if not ApiToken.objects.filter(prefix=prefix).exists():
            break
    plain = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(name=name, scope=scope, prefix=prefix, digest=apitoken_digest(plain), user=user)
    return token, plain


def apitoken_revoke(*, prefix: str) -> ApiToken:
    """Revoke the token with this prefix (once: revoking again keeps the first time)."""
    token = ApiToken.objects.get(prefix=prefix)
    ApiToken.objects.filter(id=token.id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token
