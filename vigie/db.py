"""Reading PostgreSQL timestamps at C speed.

Django (5.2, psycopg 3) loads every `timestamptz` through a Python subclass of psycopg's
pure-Python loader (django/db/backends/postgresql/psycopg_any.py, BaseTzLoader), not psycopg's C
one: about 3.5 µs a value, the largest single cost of reading rows with timestamps (1,200 a render
of `/` with a year of history: incidents, their updates, the components; docs/performance.md).
The connection's time zone is UTC (USE_TZ, no DATABASES TIME_ZONE), so PostgreSQL writes each
value as ISO 8601 with `+00`, which `datetime.fromisoformat` (C) reads at a fraction of that cost.

Where psycopg's C extension is installed (psycopg[binary], as requirements.txt pins), its own
timestamptz loader does the reading instead: the same parser as Django's loader (which is its
Python twin), in C, ~0.25 µs a value against ~1.2 for `fromisoformat`'s (a year of history renders
`/` with 1,200 of them). It gives `timezone.utc` itself on a connection whose TimeZone is UTC, which
Django's connection always is here; on any other, or without the extension, `FastTzLoader` reads:
`fromisoformat`, handing anything else (another offset, BC dates, infinity, years past 9999,
another DateStyle) to Django's loader. The values are the same datetimes, with the same tzinfo,
in every case (tests/test_db_loader.py).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

ZERO = timedelta(0)
UTC = timezone.utc


def fast_timestamps(sender=None, connection=None, **_kwargs) -> None:
    """Receiver of connection_created: on a PostgreSQL connection in UTC, read timestamps with
    _loader_class() (psycopg's C loader, or FastTzLoader)."""
    if connection is None or connection.vendor != "postgresql" or connection.timezone is not timezone.utc:
        return
    connection.connection.adapters.register_loader("timestamptz", _loader_class())


_LOADER = None


def _loader_class():
    global _LOADER
    if _LOADER is None:
        from django.db.backends.postgresql.psycopg_any import BaseTzLoader

        fromisoformat = datetime.fromisoformat

        class FastTzLoader(BaseTzLoader):
            # What Django's create_cursor compares with the connection's zone: equal, so it keeps us.
            timezone = timezone.utc

            def load(self, data):
                try:
                    value = fromisoformat(bytes(data).decode())
                except ValueError:
                    return super().load(data)
                zone = value.tzinfo
                if zone is UTC:  # "+00": fromisoformat gives timezone.utc itself, Django's zone
                    return value
                if zone is None or value.utcoffset() != ZERO:
                    return super().load(data)
                return value.replace(tzinfo=self.timezone)

        from psycopg import _cmodule
        from psycopg._tz import get_tzinfo

        # The C module psycopg itself runs (psycopg_c or psycopg_binary), if any: with the pure
        # Python implementation (PSYCOPG_IMPL=python, or a C module it refused) its connections are
        # Python objects the C loader cannot take.
        if _cmodule._psycopg is None:
            _LOADER = FastTzLoader
            return _LOADER
        CLoader = _cmodule._psycopg.TimestamptzLoader

        class UtcTzLoader(FastTzLoader):
            """Makes psycopg's C loader where it gives Django's zone, else a FastTzLoader. Registered
            as a Python class (the C one cannot be subclassed) with the `timezone` Django compares."""

            def __new__(cls, oid, context=None):
                connection = getattr(context, "connection", None)
                if get_tzinfo(connection.pgconn if connection is not None else None) is UTC:
                    return CLoader(oid, context)
                return FastTzLoader(oid, context)

        _LOADER = UtcTzLoader
    return _LOADER
