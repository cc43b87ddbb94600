"""`manage.py scenario run NAME`: drive sandbox faults on a timeline against the running system
and report each incident it caused (components, title, times, MTTD, measured vs injected)."""
from __future__ import annotations

import time

import requests

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from detection.models import Incident, OwnProblem
from probes.models import Artifact, Platform, Probe, ProbeLocation, staggered_start
from detection.scenarios import SCENARIOS, SandboxControl, scenario_play, scenario_report


class Command(BaseCommand):
    help = "Run an outage scenario against the running Vigie and its sandbox, then report what Vigie said."

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["run", "list"])
        parser.add_argument("name", nargs="?", choices=sorted(SCENARIOS))
        parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration (0.1: ten times faster)")
        parser.add_argument("--interval", type=float, default=None,
                            help="probe interval in seconds during the scenario (default: each probe's own)")
        parser.add_argument("--seed", type=int, default=None, help="random seed (flapping)")
        parser.add_argument("--sandbox-url", default=None, help="default: the sandbox platform's base URL")
        parser.add_argument("--settle", type=float, default=None,
                            help="seconds to wait for recovery after the faults (default: 6 intervals)")

    def handle(self, *args, verb, name, scale, interval, seed, sandbox_url, settle, **options):
        if verb == "list":
            for scenario in SCENARIOS.values():
                self.stdout.write(f"{scenario.name:<18} {scenario.description}. Expect: {scenario.expect}.")
            return
        if not name:
            raise CommandError("name a scenario: " + ", ".join(sorted(SCENARIOS)))
        if not 0 < scale <= 10:
            raise CommandError(f"--scale {scale} is outside (0, 10]")
        platform = Platform.objects.filter(kind="sandbox", enabled=True).first()
        if platform is None and not sandbox_url:
            raise CommandError("no enabled sandbox platform is configured; give --sandbox-url")
        from sandbox.config import control_token_read

        control = SandboxControl(sandbox_url or platform.base_url, control_token_read() or "")
        if interval is not None and interval < 1:
            raise CommandError("--interval must be at least 1 second")
        # Only the sandbox's probes are sped up: a real platform keeps its budgeted schedule.
        probes = Probe.objects.filter(enabled=True, platform__kind="sandbox")
        saved = dict(probes.values_list("id", "interval_s"))
        step = interval or min(saved.values(), default=30)
        try:
            control.clear()
            compat = control.compat()
        except requests.RequestException as exc:
            raise CommandError(f"the sandbox's control endpoint at {control.url} does not answer: "
                               f"{type(exc).__name__}. Is `make run` going?") from None
        scenario = SCENARIOS[name]
        if compat != scenario.compat:
            # A Takahē scenario against a Mastodon-like sandbox would pass without testing anything.
            raise CommandError(f"scenario {name} is about a server in {scenario.compat} mode; the sandbox runs in "
                               f"{compat} mode. Start it with `manage.py up --compat {scenario.compat}` "
                               f"(or `sandbox serve --compat {scenario.compat}`).")
        try:
            if interval:
                probes.update(interval_s=max(1, round(interval)))
                now = timezone.now()
                for placement in ProbeLocation.objects.filter(probe__in=probes).select_related("probe"):
                    ProbeLocation.objects.filter(id=placement.id).update(
                        next_run_at=staggered_start(placement.location_id, placement.probe.interval_s, now))
                time.sleep(interval * 3)  # let every placement settle on the new grid
            played = scenario_play(scenario, control=control, scale=scale, interval_s=step,
                                   say=self.stdout.write, seed=seed)
            deadline = time.monotonic() + (settle if settle is not None else step * 6)
            while time.monotonic() < deadline and Incident.objects.filter(
                    started_at__gte=played.started, resolved_at__isnull=True).exists():
                time.sleep(1)
            # Nothing may be left behind: the runs' own cleanups (retried after a lost delete) first.
            deadline = time.monotonic() + max(step * 10, 300)  # retried every minute, 50 at a time
            while time.monotonic() < deadline and Artifact.objects.filter(
                    created_at__gte=played.started, cleaned_at__isnull=True).exists():
                time.sleep(1)
        finally:
            control.clear()
            if interval:
                for probe_id, value in saved.items():
                    Probe.objects.filter(id=probe_id).update(interval_s=value)
        self._print(scenario_report(played))
        # Open at some point during the scenario (one opened before it may have been told again).
        problems = OwnProblem.objects.filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=played.started),
                                             opened_at__lte=timezone.now()).order_by("opened_at")
        for problem in problems:
            self.stdout.write(f"on-call problem: {problem.get_kind_display()} ({problem.subject}): {problem.detail}")
        if not problems:
            self.stdout.write("on-call problems: none")
        pending = Artifact.objects.filter(created_at__gte=played.started, cleaned_at__isnull=True).count()
        self.stdout.write(f"artifacts not cleaned up: {pending}; left on the platform: {control.leftovers()}")

    def _print(self, rows: list[dict]) -> None:
        for row in rows:
            if row["incident"] is None:
                worst = ", ".join(f"{k}: {v}" for k, v in row["components"].items()) or "all operational"
                self.stdout.write(f"no incident; worst component statuses: {worst}")
                continue
            fmt = "%H:%M:%S"
            duration = f"{row['duration_s']:.1f} s" if row["duration_s"] is not None else "still open"
            resolved = f"{row['resolved_at']:{fmt}}" if row["resolved_at"] else "—"
            self.stdout.write(
                f"incident {row['incident']}: {row['title']} (impact {row['impact']})\n"
                f"  components: {', '.join(f'{k} ({v})' for k, v in row['components'].items())}\n"
                f"  started {row['started_at']:{fmt}}  detected {row['detected_at']:{fmt}}  "
                f"resolved {resolved}\n"
                f"  MTTD {row['mttd_s']:.1f} s; measured {duration} ± {row['uncertainty_s']:.1f} s "
                f"vs injected {row['injected_s']:.1f} s")
