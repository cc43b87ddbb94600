"""`manage.py publish --out DIR`: write the public site as static files, for any static host or CDN."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from statuspage.publish import PublishError, site_publish


class Command(BaseCommand):
    help = "Write the status page, incident pages, JSON, feeds and badges as static files into DIR."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="folder to write into (created if missing)")

    def handle(self, *args, out: str, **options):
        try:
            written = site_publish(out=out)
        except (PublishError, OSError) as error:
            raise CommandError(f"publish: {error}") from error
        self.stdout.write(f"published {len(written)} files to {out}")
