"""`manage.py publish --out DIR [--full]`: write the public site as static files, for any static host or CDN."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from statuspage.publish import PublishError, site_publish


class Command(BaseCommand):
    help = ("Write the status page, incident pages, JSON, feeds and badges as static files into DIR. Pages whose "
            "inputs did not change since the last copy in DIR are kept as they are, unless --full is given.")

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="folder to write into (created if missing)")
        parser.add_argument("--full", action="store_true",
                            help="render every page again, even those whose inputs did not change")

    def handle(self, *args, out: str, full: bool = False, **options):
        report: dict = {}
        try:
            written = site_publish(out=out, full=full, report=report)
        except (PublishError, OSError) as error:
            raise CommandError(f"publish: {error}") from error
        skipped = report.get("skipped", [])
        for url, reason in skipped:
            self.stderr.write(f"publish: skipped {url} ({reason}); its previous file, if any, was kept")
        self.stdout.write(f"published {len(written)} files to {out}"
                          + (f"; {len(skipped)} pages skipped (see above)" if skipped else ""))
