"""On-call channels from the command line: add one, list them, send a test message."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from notifications import domain
from notifications.models import Channel, EventKind


class Command(BaseCommand):
    help = "Manage notification channels: add, list, test."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add a channel (an Apprise URL or a webhook).")
        add.add_argument("name")
        add.add_argument("kind", choices=Channel.Kind.values)
        add.add_argument("url", help="Apprise URL (slack://…, tgram://…, json://…) or the webhook's URL.")
        add.add_argument("--events", default="", help=f"Comma-separated kinds (default: all): "
                                                      f"{', '.join(k for k in EventKind.values if k != 'test')}")
        sub.add_parser("list", help="List channels (never their URLs or secrets).")
        test = sub.add_parser("test", help="Send a test message to a channel now.")
        test.add_argument("name")

    def handle(self, *args, action: str, **options):
        if action == "add":
            kinds = [k.strip() for k in options["events"].split(",") if k.strip()]
            unknown = [k for k in kinds if k not in EventKind.values]
            if unknown:
                raise CommandError(f"Unknown event kinds: {', '.join(unknown)}.")
            if options["kind"] == "apprise":
                from notifications.transports import apprise_scheme_problem

                problem = apprise_scheme_problem(options["url"])
                if problem:
                    raise CommandError(problem)
            channel = Channel.objects.create(name=options["name"], kind=options["kind"], url=options["url"],
                                             event_kinds=kinds)
            self.stdout.write(f"Added channel {channel.name!r} (id {channel.id}).")
            if channel.kind == Channel.Kind.WEBHOOK:
                self.stdout.write(f"Signing secret (shown once; verify Vigie-Signature with it): {channel.secret}")
        elif action == "list":
            for channel in Channel.objects.order_by("name"):
                state = "enabled" if channel.enabled else "disabled"
                self.stdout.write(f"{channel.id}\t{channel.name}\t{channel.kind}\t{state}\t"
                                  f"{','.join(channel.event_kinds) or 'all events'}")
        elif action == "test":
            channel = Channel.objects.filter(name=options["name"]).first()
            if channel is None:
                raise CommandError(f"No channel named {options['name']!r} (see: manage.py notify list).")
            delivery = domain.channel_test(channel=channel)
            if delivery.status != "delivered":
                raise CommandError(f"Not delivered: {delivery.last_error}")
            self.stdout.write("Delivered.")
