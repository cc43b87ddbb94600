"""ComponentMonth.seconds compressed with zlib (detection.rollups.seconds_pack): the rows 0007 wrote
as plain little-endian floats, compressed as they are. The format is written out here, not
imported, so that a later change of it does not change what this migration does."""

import zlib

from django.db import migrations


def _compressed(value: bytes) -> bool:
    try:
        zlib.decompress(value)
    except zlib.error:
        return False
    return True


def compress(apps, schema_editor):
    # A row already compressed (written by the new code before this ran) is left as it is.
    _rewrite(apps, lambda raw: raw if _compressed(raw) else zlib.compress(raw, 1))


def decompress(apps, schema_editor):
    _rewrite(apps, lambda value: zlib.decompress(value) if _compressed(value) else value)


def _rewrite(apps, change, size=1000):
    """Every row through `change`, a page of rows by id at a time."""
    month_model = apps.get_model("detection", "ComponentMonth")
    last = 0
    while True:
        rows = list(month_model.objects.filter(id__gt=last).only("id", "seconds").order_by("id")[:size])
        if not rows:
            return
        for row in rows:
            row.seconds = change(bytes(row.seconds))
        month_model.objects.bulk_update(rows, ["seconds"])
        last = rows[-1].id


class Migration(migrations.Migration):

    dependencies = [
        ('detection', '0007_component_month'),
    ]

    operations = [
        migrations.RunPython(compress, decompress),
    ]
