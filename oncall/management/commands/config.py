"""`manage.py config check|apply FILE`: validate a configuration file or bring the database to it."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from oncall.config import ConfigError, config_apply, config_read


class Command(BaseCommand):
    help = ("Check a YAML configuration file (every problem, with its line), or apply it to the database: "
            "prints what changes, then applies it; applying the same file again changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["check", "apply"])
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true",
                            help="apply: print what would change and change nothing.")
        parser.add_argument("--no-env", action="store_true",
                            help="check: the file's shape only, without the environment variables and secret "
                                 "files it refers to (e.g. on a machine other than the server).")

    def handle(self, *args, verb: str, file: str, dry_run: bool, no_env: bool, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        if no_env and verb != "check":
            raise CommandError("--no-env only goes with check: applying needs the real values.")
        try:
            data = config_read(path, shape_only=no_env)
        except ConfigError as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            message = f"{file}: {len(exc.problems)} problem(s), nothing applied"
            if exc.missing_env:
                names = ", ".join(exc.missing_env)
                message += (f". It uses environment variables that are not set here: {names}. Set them as the "
                            f"server does, or run `manage.py config check --no-env {file}` to check the file's "
                            "shape without them.")
            raise CommandError(message) from None
        if verb == "check":
            from detection.budget import limits_said

            for platform in data.get("platforms", []):  # which write limits the budget check applied, and why
                self.stdout.write(f"platform {platform['slug']}: "
                                  f"{limits_said(platform['kind'], platform.get('write_limits'))}")
            if no_env:
                self.stdout.write(f"{file}: OK in shape (environment variables and secret files not read)")
            else:
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
