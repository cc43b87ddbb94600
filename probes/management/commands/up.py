"""`manage.py up`: the embedded demo in one command — web, sandbox, workers and scheduler.

Migrates, applies the demo configuration, starts every process, prints the URL once the web server
answers it, and stops them all on Ctrl-C (saying what it stopped, exit status 0) or as soon as one
of them dies (a half-running monitor would lie; exit status 1).
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from probes.models import Location
from sandbox.config import COMPAT_MODES


class Command(BaseCommand):
    help = "Run Vigie with the bundled sandbox: web server, sandbox, one worker per location, scheduler."

    def add_arguments(self, parser):
        parser.add_argument("--config", default=os.environ.get("VIGIE_CONFIG", str(settings.BASE_DIR / "examples" / "demo.yaml")),
                            help="Configuration file to apply first (default: examples/demo.yaml, or VIGIE_CONFIG).")
        parser.add_argument("--no-sandbox", action="store_true", help="Do not start the sandbox platform.")
        parser.add_argument("--compat", default=os.environ.get("SANDBOX_COMPAT", "mastodon"),
                            choices=COMPAT_MODES,
                            help="how the sandbox answers: like Mastodon (default), like Takahē, or like Mastodon "
                                 "with locked accounts (see `manage.py sandbox serve --help`); also SANDBOX_COMPAT")

    def handle(self, *args, config: str, no_sandbox: bool, compat: str, **options):
        try:
            self._run(config=config, no_sandbox=no_sandbox, compat=compat)
        except KeyboardInterrupt:  # Ctrl-C while migrating or applying the configuration
            self.stdout.write("Stopped before Vigie started: no process was left running.")

    def _run(self, *, config: str, no_sandbox: bool, compat: str = "mastodon") -> None:
        env = os.environ.copy()
        env.setdefault("SANDBOX_PORT", str(settings.SANDBOX_PORT))
        # The sandbox and the demo configuration must agree on the test accounts' tokens; made
        # afresh for each start unless given, so no fixed credential ships with the demo. (The
        # sandbox makes its own control token per start and writes it to SANDBOX_CONTROL_TOKEN_FILE,
        # where `manage.py sandbox fault` and `manage.py scenario` read it from another terminal.)
        for name in ("SANDBOX_PROBER_TOKEN", "SANDBOX_PARTNER_TOKEN"):
            env.setdefault(name, secrets.token_urlsafe(24))
        os.environ.update({k: env[k] for k in ("SANDBOX_PORT", "SANDBOX_PROBER_TOKEN", "SANDBOX_PARTNER_TOKEN")})
        # The demo's sandbox listens on 127.0.0.1: the SSRF guard must let the processes started here reach it.
        allowed = [t.strip() for t in env.get("VIGIE_ALLOW_PRIVATE_TARGETS", "").split(",") if t.strip()]
        if "loopback" not in (t.lower() for t in allowed):
            env["VIGIE_ALLOW_PRIVATE_TARGETS"] = ",".join([*allowed, "loopback"])
        call_command("migrate", verbosity=0)
        call_command("config", "apply", config, verbosity=0, stdout=open(os.devnull, "w"))
        locations = list(Location.objects.filter(probes__enabled=True).distinct().values_list("name", flat=True))

        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        celery = [python, "-m", "celery", "-A", "vigie"]
        worker = [*celery, "worker", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                  "--without-heartbeat"]
        commands: dict[str, list[str]] = {}
        if not no_sandbox:
            commands["sandbox"] = [python, manage, "sandbox", "serve", "--port", env["SANDBOX_PORT"],
                                  "--compat", compat]
        commands["web"] = [python, manage, "runserver", f"127.0.0.1:{settings.PORT}", "--noreload", "--insecure"]
        # Three: the dispatcher holds one for most of each dispatch interval (probes.dispatch).
        commands["worker-vigie"] = [*worker, "-Q", "vigie", "-n", "vigie@%h", "--concurrency", "3"]
        for name in locations:
            commands[f"worker-{name}"] = [*worker, "-Q", f"probes.{name}", "-n", f"{name}@%h", "--concurrency", "2"]
        schedule = Path(settings.DATA_DIR) / "celerybeat-schedule"
        commands["beat"] = [*celery, "beat", "--loglevel", "WARNING", "--schedule", str(schedule)]

        processes: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        failed = None
        try:
            for name, command in commands.items():
                # Each child in its own session: Ctrl-C reaches this command only, which stops the
                # children in order, rather than each of them dying on its own and looking like a crash.
                processes[name] = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, start_new_session=True)
                if name == "sandbox":
                    # Nothing that probes it may start before it listens: the first runs would fail
                    # to connect and could show an outage that never happened.
                    self._wait_for_port(int(env["SANDBOX_PORT"]), processes[name], lambda: stopping)
            url = f"http://127.0.0.1:{settings.PORT}/"
            # The URL is printed when it answers, not when the server was merely started.
            # Asked of a page the public cache does not keep: "/" would be cached before any run.
            if self._wait_for_http(url + "oncall/login/", processes["web"], lambda: stopping):
                self.stdout.write(self.style.SUCCESS(
                    f"Vigie is running at {url}\n"
                    f"  sandbox platform: http://127.0.0.1:{env['SANDBOX_PORT']}/ "
                    f"(faults: python manage.py sandbox fault set quota_exceeded --action post)\n"
                    f"  its official status page: http://127.0.0.1:{env['SANDBOX_PORT']}/api/v2/summary.json "
                    f"(acknowledges faults after 60 s: python manage.py sandbox official never)\n"
                    f"  locations: {', '.join(locations) or 'none'}; Ctrl-C stops everything."
                ))
            while not stopping:
                time.sleep(0.5)
                for name, process in processes.items():
                    if process.poll() is not None:
                        failed = f"{name} exited with code {process.returncode}"
                        stopping = True
                        break
        except CommandError as exc:
            failed = str(exc)
        finally:
            self._stop_all(processes)
        if failed:
            raise CommandError(f"Vigie stopped because {failed}; every other process was stopped with it.")
        self.stdout.write(f"Stopped Vigie: {self._describe(processes)}. Nothing is left running.")

    @staticmethod
    def _describe(processes: dict[str, subprocess.Popen]) -> str:
        names = {"web": "the web server", "sandbox": "the sandbox platform", "beat": "the scheduler"}
        parts = [names[n] for n in ("web", "sandbox") if n in processes]
        workers = [n.removeprefix("worker-") for n in processes if n.startswith("worker-")]
        if workers:
            parts.append(f"{len(workers)} worker{'s' if len(workers) > 1 else ''} ({', '.join(workers)})")
        if "beat" in processes:
            parts.append(names["beat"])
        return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts) or "nothing"

    @staticmethod
    def _stop_all(processes: dict[str, subprocess.Popen]) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @staticmethod
    def _wait_for_http(url: str, process: subprocess.Popen, stopping, timeout: float = 120.0) -> bool:
        """True once `url` gives any HTTP answer; False if asked to stop first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stopping():
                return False
            if process.poll() is not None:
                raise CommandError(f"the web server exited with code {process.returncode} before answering {url}")
            try:
                # No proxy: the address is this machine's, whatever http_proxy says.
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True  # it answered, with an error page: it is up
            except OSError:
                time.sleep(0.2)
        raise CommandError(f"the web server did not answer {url} within {timeout:.0f} s")

    @staticmethod
    def _wait_for_port(port: int, process: subprocess.Popen, stopping, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopping():
            if process.poll() is not None:
                raise CommandError(f"the sandbox exited with code {process.returncode} before listening on {port}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        if stopping():
            return
        raise CommandError(f"the sandbox did not listen on port {port} within {timeout:.0f} s")
