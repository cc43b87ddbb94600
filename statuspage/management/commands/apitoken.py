"""manage.py apitoken create NAME --scope read|write | list | revoke PREFIX: tokens of the management API."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from statuspage.models import ApiToken, apitoken_create, apitoken_revoke


class Command(BaseCommand):
    help = "Create, list or revoke tokens of the management API (/api/v1/)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Make a token and print it (once: only its digest is kept).")
        create.add_argument("name", help="Who or what uses the token, e.g. 'on-call bot'.")
        create.add_argument("--scope", choices=ApiToken.Scope.values, default=ApiToken.Scope.READ,
                            help="read (the default) or write.")
        sub.add_parser("list", help="List tokens: prefix, scope, name, last use, revoked.")
        revoke = sub.add_parser("revoke", help="Revoke the token with this prefix.")
        revoke.add_argument("prefix", help="The 8 characters after 'vigie_' (see `apitoken list`).")

    def handle(self, *args, action: str, **options):
        if action == "create":
            token, plain = apitoken_create(name=options["name"], scope=options["scope"])
            self.stderr.write(f"Token {token.prefix} ({token.scope}) for {token.name!r} — shown once, keep it now:")
            self.stdout.write(plain)
        elif action == "list":
            for token in ApiToken.objects.all():
                revoked = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                self.stdout.write(f"{token.prefix}  {token.scope:<5}  {revoked:<24}  last used {used:<16}  "
                                  f"{token.name}")
        elif action == "revoke":
            prefix = options["prefix"].removeprefix("vigie_")[:8]
            try:
                token = apitoken_revoke(prefix=prefix)
            except ApiToken.DoesNotExist:
                raise CommandError(f"No token with prefix {prefix!r} (see `manage.py apitoken list`).") from None
            self.stdout.write(f"Revoked {token.prefix} ({token.name}) at {token.revoked_at:%Y-%m-%d %H:%M:%S %Z}.")
