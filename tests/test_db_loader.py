"""vigie/db.py: PostgreSQL timestamps read by psycopg's C loader, or by datetime.fromisoformat where
that one would not give Django's zone, give exactly what Django's loader gives, and anything
they cannot read fails as Django's loader does."""
from __future__ import annotations

import os
from datetime import timezone

import pytest
from django.db.backends.postgresql.psycopg_any import BaseTzLoader

from vigie.db import _loader_class

pytest.importorskip("psycopg")


class DjangoUTC(BaseTzLoader):
    timezone = timezone.utc


def fast_loader():
    """The fromisoformat loader: the one the C loader falls back to (its base class)."""
    return next(c for c in _loader_class().__mro__ if c.__name__ == "FastTzLoader")


LOADERS = [pytest.param(lambda: _loader_class(), id="registered"), pytest.param(fast_loader, id="fromisoformat")]


VALUES = [b"2026-12-06 17:45:31.123456+00", b"2026-12-06 17:45:31+00", b"2026-12-06 17:45:31.1+00",
          b"2026-12-06 17:45:31.12345+00", b"1970-01-01 00:00:00+00", b"0001-01-01 00:00:00+00",
          b"9999-12-31 23:59:59.999999+00", b"2024-02-29 12:00:00.000001+00",
          # Not in UTC: read by Django's loader (which converts to the connection's zone)
          b"2026-12-06 17:45:31+05:30", b"2026-12-06 17:45:31.5-03"]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("data", VALUES)
def test_the_same_datetime_as_djangos_loader(data, loader):
    fast, django = loader()(1184, None), DjangoUTC(1184, None)
    mine, theirs = fast.load(data), django.load(data)
    assert mine == theirs and mine.tzinfo is theirs.tzinfo is timezone.utc
    assert mine.isoformat() == theirs.isoformat()


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("data", [b"0044-03-15 12:00:00+00 BC", b"infinity", b"-infinity", b"10000-01-01 00:00:00+00"])
def test_what_it_cannot_read_is_djangos_loaders(data, loader):
    fast, django = loader()(1184, None), DjangoUTC(1184, None)
    try:
        expected = django.load(data)
    except Exception as error:  # noqa: BLE001 — the same error, whatever it is
        with pytest.raises(type(error)):
            fast.load(data)
    else:
        assert fast.load(data) == expected


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_postgresql_connection_reads_timestamps_with_it():
    from django.db import connection

    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, 0)
    assert loader is _loader_class()
    with connection.cursor() as cursor:
        cursor.execute("SELECT TIMESTAMPTZ '2026-12-06 17:45:31.5+00', TIMESTAMPTZ '2026-12-06 12:00:00-05'")
        first, second = cursor.fetchone()
    assert first.isoformat() == "2026-12-06T17:45:31.500000+00:00"
    assert second.isoformat() == "2026-12-06T17:00:00+00:00" and second.tzinfo is timezone.utc


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_session_in_another_zone_reads_as_djangos_loader_does():
    """psycopg's C loader gives the session's zone; where that is not UTC (someone's SET TIME ZONE),
    the registered loader reads as Django's own loader does on that session instead: a value in
    Django's zone (UTC), never another tzinfo."""
    from django.db import connection

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")
        try:
            cursor.execute("SELECT TIMESTAMPTZ '2026-12-06 17:45:31.5+00', TIMESTAMPTZ '2026-12-06 17:45:31.5+00'::text")
            value, text = cursor.fetchone()
            expected = DjangoUTC(1184, cursor.cursor).load(text.encode())
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert text == "2026-12-06 18:45:31.5+01"
    assert value == expected and value.tzinfo is timezone.utc


@pytest.mark.postgres
@pytest.mark.django_db
def test_psycopg_in_pure_python_reads_timestamps_too():
    """With psycopg's pure Python implementation (PSYCOPG_IMPL=python) its connections are Python
    objects that the C loader cannot take: the fromisoformat loader reads instead."""
    import ctypes.util
    import subprocess
    import sys

    from django.db import connection

    if ctypes.util.find_library("pq") is None:
        pytest.skip("psycopg's pure Python implementation needs the system's libpq")

    script = ("import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'vigie.settings'); django.setup()\n"
              "from django.db import connection\n"
              "with connection.cursor() as c:\n"
              "    c.execute(\"SELECT TIMESTAMPTZ '2026-12-06 17:45:31.5+00'\")\n"
              "    print(c.fetchone()[0].isoformat(), connection.connection.pgconn.__class__.__module__)\n")
    settings_dict = connection.settings_dict
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    url = (f"postgres://{settings_dict['USER']}{password}@{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}/"
           f"{settings_dict['NAME']}")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PSYCOPG_IMPL": "python", "DATABASE_URL": url})
    assert out.returncode == 0, out.stderr[-2000:]
    value, module = out.stdout.split()
    assert value == "2026-12-06T17:45:31.500000+00:00" and module.startswith("psycopg.pq")
