"""Encryption at rest for platform credentials (Fernet, key from the environment)."""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models


def _fernet() -> Fernet:
    key = settings.VIGIE_ENCRYPTION_KEY
    if key:
        return Fernet(key.encode())
    digest = hashlib.sha256(b"vigie-credentials:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


# What an encrypted value reads as when the key has changed since it was written: the row still
# loads (so the admin and `config apply` can overwrite it) and a run reports an auth failure.
UNREADABLE = "<unreadable: encrypted with another key>"


def decrypt(value: str) -> str:
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken:
        return UNREADABLE


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python code only ever sees the plain value."""

    def from_db_value(self, value, expression, connection):  # noqa: ARG002
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
