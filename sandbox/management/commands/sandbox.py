"""`manage.py sandbox`: serve the sandbox platform, and steer a running one (faults, artifacts, reset)."""
from __future__ import annotations

import os
import signal
import threading
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.config import (
    COMPAT_MODES, RATE_LIMIT_PRESETS, SandboxConfig, control_token_file, control_token_read, control_token_write,
    default_port,
)
from sandbox.faults import FaultSpecError, parse_duration, validate_spec
from sandbox.server import make_server

# CLI spelling of each fault-spec field, so an error points at what the user typed.
# A fault whose meaning names its action needs no --action: the obvious one is used, and said.
DEFAULT_ACTIONS = {"accept_overlong": "post"}
DEFAULT_ACTIONS_WHY = {"accept_overlong": "the only action where a too-long text can be accepted "
                                          "(pass --action dm for direct messages)"}
FLAGS = {"kind": "KIND", "action": "--action", "location": "--location", "duration_s": "--for", "body": "request",
         "official_ack_s": "--official-ack"}


def _describe(fault: dict[str, Any], now: datetime) -> str:
    where = f"location {fault['location']}" if fault.get("location") else "all locations"
    text = f"{fault['kind']} on {fault['action']} at {where}"
    if fault.get("expires_at"):
        end = datetime.strptime(fault["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        left = max(0, int((end - now).total_seconds()))
        text += f", expires {fault['expires_at']} (in {left // 3600}h{left % 3600 // 60:02d}m{left % 60:02d}s)"
    else:
        text += ", until cleared"
    return text


class Command(BaseCommand):
    help = ("Run the bundled sandbox platform (a Mastodon API subset with fault injection) "
            "or steer a running one: sandbox serve | fault set/list/clear | official | artifacts | reset.")

    def add_arguments(self, parser: CommandParser) -> None:
        subs = parser.add_subparsers(dest="subcommand", required=True,
                                     metavar="{serve,fault,official,artifacts,reset}")

        serve = subs.add_parser("serve", help="serve the sandbox until SIGINT/SIGTERM")
        serve.add_argument("--host", default="127.0.0.1")
        serve.add_argument("--port", type=int, default=None,
                           help="port to listen on (default: $SANDBOX_PORT or 8001; 0 picks a free one)")
        serve.add_argument("--rate-limits", choices=sorted(RATE_LIMIT_PRESETS), default="generous",
                           help="generous (default, probes never hit it) or mastodon (the real numbers)")
        serve.add_argument("--max-characters", type=int, default=500)
        serve.add_argument("--verbose", action="store_true", help="log one line per request to stderr")
        serve.add_argument("--compat", choices=COMPAT_MODES, default="mastodon",
                           help="answer like Mastodon (default) or like Takahē (400 for an over-long post, no "
                                "rate-limit headers, a reblog answered with the original, HTML 404 pages, follows "
                                "effective a second after they are answered, read-only writes refused with 500 "
                                "HTML, a bad token refused with 400 HTML, a duplicate concurrent follow answered "
                                "500, posts fanned out to followers after 0.5 s), or like Mastodon with locked or "
                                "remote accounts (mastodon-locked: follows answered requested, accepted a second "
                                "later)")
        serve.add_argument("--follow-delay", type=float, default=None, metavar="SECONDS",
                           help="seconds before a follow is effective (default: 0, or 1 with --compat takahe)")
        serve.add_argument("--fanout-delay", type=float, default=None, metavar="SECONDS",
                           help="seconds before a post reaches followers' home timelines "
                                "(default: 0, or 0.5 with --compat takahe)")

        fault = subs.add_parser("fault", help="inject, list or clear faults in a running sandbox")
        fault_subs = fault.add_subparsers(dest="fault_command", required=True, metavar="{set,list,clear}")
        fault_set = fault_subs.add_parser("set", help="inject a fault")
        fault_set.add_argument("kind", help="quota_exceeded, read_only, server_error, slow:<ms>, drop, accept_overlong, "
                                            "delete_lost, fanout_stalled")
        fault_set.add_argument("--action", help="post, repost, follow, dm, read or *; accept_overlong "
                                                "defaults to post (the only action it makes sense on)")
        fault_set.add_argument("--location", default=None, help="only for probes whose User-Agent names it")
        fault_set.add_argument("--for", dest="duration", default=None, help="expire after e.g. 90s, 20m, 1h")
        fault_set.add_argument("--official-ack", default=None, metavar="DELAY|never",
                               help="the official status page acknowledges this fault after DELAY (e.g. 5m), or never "
                                    "(default: the page's own setting, see `sandbox official`)")
        fault_list = fault_subs.add_parser("list", help="list active faults")
        fault_clear = fault_subs.add_parser("clear", help="clear one fault by id, or all")
        fault_clear.add_argument("id", nargs="?", default=None)
        official = subs.add_parser("official", help="steer the sandbox's official status page (/api/v2/*.json, "
                                                    "/history.atom)")
        official_subs = official.add_subparsers(dest="official_command", required=True,
                                                metavar="{show,ack-after,never,declare,resolve,clear,answer}")
        official_show = official_subs.add_parser("show", help="what the page declares and how it acknowledges")
        ack_after = official_subs.add_parser("ack-after", help="acknowledge faults this long after they start")
        ack_after.add_argument("delay", help="e.g. 0s, 90s, 5m")
        never = official_subs.add_parser("never", help="never acknowledge faults (the February 2023 silence)")
        declare = official_subs.add_parser("declare", help="declare an incident (one probes may not see)")
        declare.add_argument("name")
        declare.add_argument("--component", action="append", default=[],
                             help="a component of the page (Posting, Reposting, Following, Direct messages, Timeline)")
        declare.add_argument("--impact", default="major", choices=("none", "minor", "major", "critical"))
        resolve = official_subs.add_parser("resolve", help="resolve one official incident by id, or all")
        resolve.add_argument("id", nargs="?", default=None)
        official_clear = official_subs.add_parser("clear", help="forget official incidents and settings")
        answer = official_subs.add_parser("answer", help="how the page itself answers: ok, error (503), html, "
                                                         "garbage, slow:<ms>")
        answer.add_argument("answer")
        artifacts = subs.add_parser("artifacts", help="count what the seeded accounts currently have")
        reset = subs.add_parser("reset", help="forget statuses, follows, faults and rate-limit counters")
        for sub in (fault_set, fault_list, fault_clear, official_show, ack_after, never, declare, resolve,
                    official_clear, answer, artifacts, reset):
            sub.add_argument("--url", default=None,
                             help="base URL of the running sandbox (default http://127.0.0.1:$SANDBOX_PORT)")
            sub.add_argument("--token", default=None, help="control token (default $SANDBOX_CONTROL_TOKEN, else the file the running sandbox wrote: "
                                     "SANDBOX_CONTROL_TOKEN_FILE, var/sandbox-control-token)")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "serve":
            self._serve(options)
        elif subcommand == "fault":
            handlers = {"set": self._fault_set, "list": self._fault_list, "clear": self._fault_clear}
            handlers[options["fault_command"]](options)
        elif subcommand == "official":
            self._official(options)
        elif subcommand == "artifacts":
            self._artifacts(options)
        elif subcommand == "reset":
            self._call(options, "POST", "/_sandbox/reset")
            self.stdout.write("Sandbox state reset: statuses, follows, faults and rate-limit counters cleared.")

    # -- serve --------------------------------------------------------------------------------------

    def _serve(self, options: dict[str, Any]) -> None:
        port = default_port() if options["port"] is None else options["port"]
        try:
            config = SandboxConfig(rate_limits=options["rate_limits"], max_characters=options["max_characters"],
                                   verbose=options["verbose"], compat=options["compat"],
                                   follow_delay_s=options.get("follow_delay"),
                                   fanout_delay_s=options.get("fanout_delay"))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            server = make_server(options["host"], port, config=config)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{port}: {exc.strerror or exc}. "
                               "Is a sandbox already running there? Choose another --port.") from None
        # A control token per start unless one is configured, written where the control clients
        # (`sandbox fault`, `scenario`) find it, and shown here.
        path = control_token_write(config.control_token)
        self.stdout.write(f"Sandbox platform listening on {server.url}")
        self.stdout.write(f"Control token: {config.control_token} (also in {path})")
        self.stdout.flush()
        previous = None
        if threading.current_thread() is threading.main_thread():
            def on_term(signum, frame):  # SIGTERM (docker stop, process managers) ends it like Ctrl-C
                raise KeyboardInterrupt
            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self.stdout.write("Sandbox platform stopped.")

    # -- control client -----------------------------------------------------------------------------

    def _call(self, options: dict[str, Any], method: str, path: str, payload: Any = None, *,
              on_404: str | None = None) -> Any:
        base = (options.get("url") or f"http://127.0.0.1:{default_port()}").rstrip("/")
        token = options.get("token") or control_token_read() or ""
        try:
            response = requests.request(method, base + path, json=payload, timeout=10,
                                        headers={"Authorization": f"Bearer {token}"})
        except requests.ConnectionError:
            raise CommandError(f"sandbox not reachable at {base}: nothing answered. Start it with "
                               "`python manage.py sandbox serve`, or pass --url.") from None
        except requests.RequestException as exc:
            raise CommandError(f"sandbox at {base} did not answer properly: {exc}") from None
        if response.status_code == 401 and not token:
            raise CommandError(f"no control token: start the sandbox with `manage.py sandbox serve` (it writes "
                               f"{control_token_file()}), or set SANDBOX_CONTROL_TOKEN, or pass --token.")
        if response.status_code == 401:
            raise CommandError(f"the sandbox at {base} refused the control token: set SANDBOX_CONTROL_TOKEN "
                               "to the token it was started with, or pass --token.")
        try:
            data = response.json()
        except ValueError:
            raise CommandError(f"{base}{path} answered HTTP {response.status_code} without JSON: "
                               "is that a Vigie sandbox?") from None
        if response.status_code == 404 and on_404:
            raise CommandError(on_404)
        if response.status_code >= 400:
            message = data.get("error", response.reason) if isinstance(data, dict) else response.reason
            field = data.get("field") if isinstance(data, dict) else None
            where = f" ({FLAGS.get(field, field)})" if field else ""
            raise CommandError(f"sandbox refused{where}: {message}")
        return data

    # -- subcommands --------------------------------------------------------------------------------

    def _fault_set(self, options: dict[str, Any]) -> None:
        action = options["action"]
        if action is None:
            kind = options["kind"].split(":", 1)[0]
            if kind not in DEFAULT_ACTIONS:
                raise CommandError(f"--action: say which action {options['kind']!r} applies to: "
                                   "post, repost, follow, dm, read or * (every action).")
            action = DEFAULT_ACTIONS[kind]
            self.stdout.write(f"No --action given: {kind} applies to {action}, {DEFAULT_ACTIONS_WHY[kind]}.")
        spec: dict[str, Any] = {"kind": options["kind"], "action": action}
        if options["location"] is not None:
            spec["location"] = options["location"]
        if options["duration"] is not None:
            try:
                spec["duration_s"] = parse_duration(options["duration"])
            except ValueError as exc:
                raise CommandError(f"--for: {exc}") from None
        if options.get("official_ack") is not None:
            spec["official_ack_s"] = "never" if options["official_ack"] == "never" else self._delay(
                options["official_ack"], "--official-ack")
        try:
            validate_spec(spec)  # check locally first: clear errors even when no sandbox is running
        except FaultSpecError as exc:
            raise CommandError(f"{FLAGS.get(exc.field, exc.field)}: {exc.message}") from None
        fault = self._call(options, "POST", "/_sandbox/faults", spec)
        self.stdout.write(f"Fault {fault['id']} set: {_describe(fault, datetime.now(timezone.utc))}")

    @staticmethod
    def _delay(text: str, flag: str) -> float:
        if text.strip() in ("0", "0s"):
            return 0.0
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise CommandError(f"{flag}: {exc}") from None

    def _official(self, options: dict[str, Any]) -> None:
        command = options["official_command"]
        if command == "ack-after":
            self._call(options, "POST", "/_sandbox/official", {"ack_after_s": self._delay(options["delay"], "delay")})
            self.stdout.write(f"The official page acknowledges faults {options['delay']} after they start.")
        elif command == "never":
            self._call(options, "POST", "/_sandbox/official", {"ack_after_s": "never"})
            self.stdout.write("The official page will not acknowledge faults.")
        elif command == "declare":
            incident = self._call(options, "POST", "/_sandbox/official/incidents",
                                  {"name": options["name"], "components": options["component"],
                                   "impact": options["impact"]})
            self.stdout.write(f"Official incident {incident['id']} declared: {incident['name']}")
        elif command == "resolve":
            path = (f"/_sandbox/official/incidents/{quote(options['id'], safe='')}/resolve" if options["id"]
                    else "/_sandbox/official/resolve")
            resolved = self._call(options, "POST", path, on_404=f"no open official incident {options['id']!r}")
            self.stdout.write(f"Resolved {resolved['resolved']} official incident(s).")
        elif command == "clear":
            self._call(options, "DELETE", "/_sandbox/official")
            self.stdout.write("Official page cleared: no incidents, faults acknowledged after 60 s.")
        elif command == "answer":
            self._call(options, "POST", "/_sandbox/official", {"answer": options["answer"]})
            self.stdout.write(f"The official page now answers: {options['answer']}.")
        page = self._call(options, "GET", "/_sandbox/official")
        ack = page["ack_after_s"]
        self.stdout.write(f"Acknowledges faults: {'never' if ack == 'never' else f'after {ack:g} s'}; "
                          f"answers: {page['answer']}")
        for incident in page["incidents"]:
            self.stdout.write(f"{incident['id']}  {incident['status']:<13} {incident['impact']:<8} {incident['name']}"
                              f" ({', '.join(c['name'] for c in incident['components']) or 'no component'})")

    def _fault_list(self, options: dict[str, Any]) -> None:
        faults = self._call(options, "GET", "/_sandbox/faults")["faults"]
        if not faults:
            self.stdout.write("No active faults.")
            return
        now = datetime.now(timezone.utc)
        for fault in faults:
            self.stdout.write(f"{fault['id']:>4}  {_describe(fault, now)}")

    def _fault_clear(self, options: dict[str, Any]) -> None:
        if options["id"] is None:
            cleared = self._call(options, "DELETE", "/_sandbox/faults")["cleared"]
            self.stdout.write(f"Cleared {cleared} fault{'s' if cleared != 1 else ''}.")
            return
        fault_id = options["id"].strip()
        fault = self._call(options, "DELETE", f"/_sandbox/faults/{quote(fault_id, safe='')}",
                           on_404=f"no active fault with id {fault_id!r} (see `manage.py sandbox fault list`)")
        self.stdout.write(f"Cleared fault {fault_id}: {_describe(fault['fault'], datetime.now(timezone.utc))}")

    def _artifacts(self, options: dict[str, Any]) -> None:
        accounts = self._call(options, "GET", "/_sandbox/artifacts")["accounts"]
        for username, counts in accounts.items():
            self.stdout.write(f"{username}: {counts['statuses']} statuses, {counts['reblogs']} reblogs, "
                              f"{counts['follows']} follows, {counts['direct_messages']} direct messages")
        if not any(any(c.values()) for c in accounts.values()):
            self.stdout.write("Nothing left behind.")
