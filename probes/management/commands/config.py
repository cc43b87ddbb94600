"""`manage.py config check|apply FILE`: validate a configuration file or bring the database to it."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from probes.config import ConfigError, config_apply, config_load


class Command(BaseCommand):
    help = "Check a YAML configuration file, or apply it to the database (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["check", "apply"])
        parser.add_argument("file")

    def handle(self, *args, verb: str, file: str, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        try:
            data = config_load(path.read_text())
        except ConfigError as exc:
            for problem in exc.problems:
                self.stderr.write(f"{file}: {problem}")
            raise CommandError(f"{file}: {len(exc.problems)} problem(s), nothing applied") from None
        if verb == "check":
            self.stdout.write(f"{file}: OK")
            return
        changes = config_apply(data)
        for change in changes:
            self.stdout.write(change)
        self.stdout.write(f"{file}: applied, {len(changes)} change(s)")
