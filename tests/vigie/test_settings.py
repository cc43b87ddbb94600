"""A wrong environment value stops start-up with a message naming the variable."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIE_", "DATABASE_URL", "CELERY_"))}
    clean.update({"VIGIE_DATA_DIR": str(tmp_path), **env})
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("name,value,words", [
    ("DATABASE_URL", "mysql://root@localhost/vigie", "must start with one of"),
    ("DATABASE_URL", "postgres://[bad", "DATABASE_URL"),
    ("CELERY_BROKER_URL", "kafka://localhost", "must start with one of"),
    ("PORT", "eighty", "is not a whole number"),
    ("SANDBOX_PORT", "70000", "above the maximum"),
    ("VIGIE_DEBUG", "maybe", "is not a boolean"),
    ("VIGIE_SECRET_KEY", "short", "at least 32 characters"),
    ("VIGIE_MAX_RESPONSE_BYTES", "10", "below the minimum"),
    ("VIGIE_PUBLIC_URL", "status.example.com", "must start with one of"),
    ("VIGIE_ENCRYPTION_KEY", "not-a-fernet-key", "is not a Fernet key"),
    ("VIGIE_TIME_ZONE", "Mars/Olympus", "is not a time zone name"),
    ("VIGIE_LOG_LEVEL", "LOUD", "is not one of DEBUG"),
    ("VIGIE_INCIDENT_CONFIRM_RUNS", "-1", "below the minimum"),
    ("VIGIE_CACHE_URL", "memcached://localhost", "must start with one of"),
    ("VIGIE_PUBLIC_CACHE_SECONDS", "a while", "is not a whole number"),
])
def test_a_bad_value_stops_start_up_naming_the_variable(name, value, words, tmp_path):
    result = start({name: value}, tmp_path)
    assert result.returncode != 0
    assert name in result.stderr
    assert words in result.stderr


def test_no_variable_at_all_starts_on_sqlite_with_the_embedded_broker(tmp_path):
    result = start({}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret_key").exists()
    assert (tmp_path / "broker" / "queue").is_dir()


def test_a_password_in_a_bad_database_url_is_not_echoed(tmp_path):
    result = start({"DATABASE_URL": "mysql://vigie:hunter2secret@db/vigie"}, tmp_path)
    assert result.returncode != 0
    assert "hunter2secret" not in result.stderr
