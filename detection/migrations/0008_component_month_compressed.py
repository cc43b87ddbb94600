"""ComponentMonth.seconds compressed with zlib (detection.rollups.seconds_pack): the rows 0007 wrote
as plain little-endian floats, compressed as they are. The format is written out here, not
imported, so that a later change of it does not change what this migration does."""

import zlib

from django.db import migrations


def compress(apps, schema_editor):
    _rewrite(apps, lambda raw: zlib.compress(raw, 1))


def decompress(apps, schema_editor):
    _rewrite(apps, zlib.decompress)


def _rewrite(apps, change):
    month_model = apps.get_model("detection", "ComponentMonth")
    batch = []
    for row in month_model.objects.only("id", "seconds").order_by("id").iterator(chunk_size=1000):
        row.seconds = change(bytes(row.seconds))
        batch.append(row)
        if len(batch) == 1000:
            month_model.objects.bulk_update(batch, ["seconds"])
            batch = []
    month_model.objects.bulk_update(batch, ["seconds"])


class Migration(migrations.Migration):

    dependencies = [
        ('detection', '0007_component_month'),
    ]

    operations = [
        migrations.RunPython(compress, decompress),
    ]
