"""Email settings come from VIGIE_EMAIL_URL and VIGIE_EMAIL_FROM; a wrong value stops start-up."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.vigie.test_settings import ROOT, start


@pytest.mark.parametrize("name,value,words", [
    ("VIGIE_EMAIL_URL", "sendmail://localhost", "must start with one of"),
    ("VIGIE_EMAIL_URL", "smtp://user:pw@mail.example.org:port", "port that is not a number"),
    ("VIGIE_EMAIL_URL", "smtp://", "names no host"),
    ("VIGIE_EMAIL_FROM", "vigie", "is not an email address"),
    ("VIGIE_WEBHOOK_ALLOW_PRIVATE", "perhaps", "is not a boolean"),
])
def test_a_bad_email_setting_stops_start_up_naming_the_variable(name, value, words, tmp_path):
    result = start({name: value}, tmp_path)
    assert result.returncode != 0
    assert name in result.stderr and words in result.stderr


def test_an_smtp_url_sets_host_port_user_password_and_tls(tmp_path):
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, "
            "s.EMAIL_USE_TLS, s.EMAIL_USE_SSL)")
    env = {"VIGIE_EMAIL_URL": "smtp://ops%40example.org:p%2Fss@mail.example.org:2525"}
    result = start(env, tmp_path)
    assert result.returncode == 0, result.stderr

    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={**os.environ, "VIGIE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "vigie.settings",
                                        **env})
    assert shown.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "mail.example.org", "2525",
                                    "ops@example.org", "p/ss", "True", "False"]
