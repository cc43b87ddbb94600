"""Redaction of secrets in any case, spacing or escaping (issue 17, finding 9): one function
(platforms.http.redact), used by the runs' evidence and by notification errors."""
from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

import pytest
import responses
from hypothesis import given, settings as hsettings, strategies as st

from notifications.transports import redact as notification_redact
from platforms.http import REDACTED, redact
from tests.platforms.adapters.test_x import BASE, PROBER_TOKEN, location, run, stored, x_platform  # noqa: F401

SECRET = "AbCdEf123456xyzTOKEN"


def squashed(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


@pytest.mark.parametrize("form", [
    SECRET, SECRET.upper(), SECRET.lower(), "Ab Cd Ef 12 34 56 xyz TOKEN", "AbCd-Ef12.3456_xyz:TOKEN",
    "A\tb\nCdEf123456xyzTOKEN", quote(SECRET), "".join(f"%{ord(c):02X}" for c in SECRET),
    "".join(f"&#{ord(c)};" for c in SECRET), "\\u0041bCdEf123456xyzTOKEN",
    base64.b64encode(SECRET.encode()).decode(),
])
def test_a_secret_is_redacted_in_any_case_spacing_or_encoding(form):
    out = redact(f"401: Bearer {form} is not valid", [SECRET])
    assert REDACTED in out and squashed(SECRET) not in squashed(out.replace(REDACTED, " ")), out
    assert out.startswith("401: Bearer ") and out.endswith(" is not valid")


def test_texts_without_the_secret_are_left_alone():
    text = "HTTP 503: upstream connect error, retry in 30 s (AbCdEf is a prefix only)"
    assert redact(text, [SECRET]) == text


@hsettings(max_examples=200, deadline=None)
@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8,
                      max_size=40),
       gaps=st.lists(st.sampled_from(["", "", " ", "-", ".", "_", " \t", ": "]), min_size=40, max_size=40),
       upper=st.booleans(), prefix=st.text(max_size=30), suffix=st.text(max_size=30))
def test_any_spaced_or_recased_copy_of_a_token_is_redacted(secret, gaps, upper, prefix, suffix):
    copy = "".join(ch + gaps[i] for i, ch in enumerate(secret))
    copy = copy.upper() if upper else copy.lower()
    out = redact(f"{prefix}[{copy}]{suffix}", [secret])
    inside = out[len(prefix):len(out) - len(suffix)] if suffix else out[len(prefix):]
    assert squashed(secret) not in squashed(inside.replace(REDACTED, " "))


def test_notification_errors_use_the_same_redaction():
    url = "https://hooks.example.org/services/T000/B000/XXXXsecretpathpieceXXXX"
    out = notification_redact("Refused: XXXXSECRETPATHPIECEXXXX is unknown", [url, "XXXXsecretpathpieceXXXX"])
    assert "***" in out and "SECRETPATHPIECE" not in out.upper().replace("***", "")


@pytest.mark.django_db
def test_an_upper_cased_token_echoed_by_a_platform_never_reaches_stored_evidence(x_platform, location):
    echo = {"title": "Unauthorized", "type": "about:blank", "status": 401,
            "detail": f"Unauthorized: BEARER {' '.join(PROBER_TOKEN.upper())} is not valid"}
    with responses.RequestsMock() as rsps:
        rsps.add("GET", BASE + "/2/users/me", json=echo, status=401)
        row = run(x_platform, "read", location)
    assert row.failure_class == "auth"
    assert "[redacted]" in row.evidence["platform_error"]
    assert squashed(PROBER_TOKEN) not in squashed(json.dumps(stored(row)))
