"""Heavy database fixtures built once per test process and copied into each test that asks.

`Snapshot(build)` runs `build()` the first time, inside that test's transaction, and keeps the
rows it added (every model, many-to-many tables included); later tests get the same rows written
back as loaddata writes them (raw inserts), primary keys and all, in a few statements instead of replaying the build
through the real code. Foreign keys are checked at commit (Django makes them DEFERRABLE INITIALLY
DEFERRED on PostgreSQL and SQLite), so the order of the tables does not matter. Sequences are moved
past the copied keys, so rows a test adds afterwards get new ones.

Only for builds whose result does not depend on when they run (fixed clocks): what depends on
`now` is made by the fixture after the copy, in every test.
"""
from __future__ import annotations

from typing import Callable

from django.apps import apps
from django.core.management.color import no_style
from django.db import connection, transaction


def _models():
    return [model for model in apps.get_models(include_auto_created=True)
            if model._meta.managed and not model._meta.proxy]


def _keys() -> dict:
    return {model: set(model._base_manager.values_list("pk", flat=True)) for model in _models()}


class Snapshot:
    def __init__(self, build: Callable[[], object]) -> None:
        self.build = build
        self.rows: list[tuple[type, list[dict]]] | None = None
        self.vendor: str | None = None
        self.result = None

    def restore(self):
        """The build's rows in the database of the running test; returns what build() returned
        the first time (plain values: model instances would be stale copies)."""
        if self.rows is None or self.vendor != connection.vendor:
            before = _keys()
            self.result = self.build()
            self.rows = []
            for model in _models():
                fields = [field.attname for field in model._meta.concrete_fields]
                added = [row for row in model._base_manager.values(*fields) if row[model._meta.pk.attname]
                         not in before[model]]
                if added:
                    self.rows.append((model, added))
            self.vendor = connection.vendor
            return self.result
        # One transaction, so the deferred foreign keys are checked once at its end whatever the
        # order of the tables, also for tests that run without a wrapping transaction (live_server).
        with transaction.atomic():
            for model, rows in self.rows:
                # As loaddata writes (raw): the values as kept, no field's pre_save, no signals.
                fields = model._meta.concrete_fields
                objects = [model(**row) for row in rows]
                size = connection.ops.bulk_batch_size(fields, objects) or len(objects)
                for start in range(0, len(objects), size):
                    model._base_manager._insert(objects[start:start + size], fields=fields, raw=True)
        statements = connection.ops.sequence_reset_sql(no_style(), [model for model, _ in self.rows])
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
        return self.result
