"""`manage.py config check|apply FILE`: validate a configuration file or bring the database to it."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from probes.config import ConfigError, config_apply, config_read


class Command(BaseCommand):
    help = ("Check a YAML configuration file (every problem, with its line), or apply it to the database: "
            "prints what changes, then applies it; applying the same file again changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["check", "apply"])
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true",
                            help="apply: print what would change and change nothing.")

    def handle(self, *args, verb: str, file: str, dry_run: bool, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        try:
            data = config_read(path)
        except ConfigError as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            raise CommandError(f"{file}: {len(exc.problems)} problem(s), nothing applied") from None
        if verb == "check":
            from probes.budget import limits_said

            for platform in data.get("platforms", []):  # which write limits the budget check applied, and why
                self.stdout.write(f"platform {platform['slug']}: "
                                  f"{limits_said(platform['kind'], platform.get('write_limits'))}")
            self.stdout.write(f"{file}: OK")
            return
        # The changes are printed before the transaction that makes them commits.
        with transaction.atomic():
            changes = config_apply(data, dry_run=dry_run)
            for change in changes:
                self.stdout.write(change)
        if not changes:
            self.stdout.write(f"{file}: no changes")
        elif dry_run:
            self.stdout.write(f"{file}: {len(changes)} change(s) to apply (dry run: nothing changed)")
        else:
            self.stdout.write(f"{file}: applied {len(changes)} change(s)")
