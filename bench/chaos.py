"""The chaos run (issue 20): a known scenario on a PostgreSQL + Redis stack with two locations, while
its own parts are broken, then a truth oracle comparing what Vigie said with what was injected.

    .venv/bin/python bench/chaos.py --scale 1      # full scale, about 15 minutes (make chaos)
    .venv/bin/python bench/chaos.py --scale 0.15   # the CI size, about 2 minutes

Everything it starts is its own, on random ports, in a temporary folder, and stopped at the end:
a PostgreSQL cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin, run as the `postgres` user
when started as root), a redis-server (broker and cache, append-only so a restart keeps the
queues), the sandbox platform, granian (two web processes), Vigie's own worker, one worker per
location (sacramento, atlanta), two schedulers (`celery beat`, holding the scheduler lease in
turn), a webhook receiver standing for on-call, and a poller reading / and the JSON API.
The shared PostgreSQL (5432) and Redis (6379) are never touched.

Timeline (durations × --scale; probe interval = 10 s × scale, at least 1 s):
  warm-up 60 s · feb-2023 (every write refused, quota_exceeded) 240 s · gap 240 s ·
  DM-only outage (server_error on dm) 180 s · settle 150 s
Chaos, at fixed points of that timeline:
  feb-2023 at 30 %: SIGKILL the sacramento worker (its whole process group), restarted 2 intervals later
  feb-2023 at 60 %: fill the spool's disk (a 256 KiB tmpfs mounted on the spool folder when root,
                    otherwise the spool folder made read-only — said in the output), then restart
                    PostgreSQL (down 3 intervals); the disk is freed once PostgreSQL is back
  gap at 30 %:      stop Redis (SIGTERM) for 6 intervals, then start it again on the same port
  DM outage at 40 %: SIGKILL the scheduler holding the lease; the other one must take over
Each event is placed away from the outages' edges: an edge that falls while Vigie cannot probe is
only seen at the next run (by design), which would measure the monitor's gap, not its truth.

The oracle (the table printed at the end) reads the public API and page, the database, the
sandbox's own record and the webhook receiver. Rows and their definitions: docs/chaos.md.
"""
from __future__ import annotations

import argparse
import base64
import glob
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
CELERY = [PYTHON, "-m", "celery", "-A", "vigie"]
LOCATIONS = ("sacramento", "atlanta")
RECOVERY_S = 10
CLEANUP_EVERY_S = 60  # beat's retry-pending-cleanups (vigie/settings.py)
# The components feb-2023 takes down: every write, and Post delivery (its probe posts too).
WRITES = ("Posting", "Reposting", "Following", "Direct messages", "Post delivery")


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


# --- the private PostgreSQL and Redis -----------------------------------------------------------

class Postgres:
    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: tuple(int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")))
        if not found:
            raise SystemExit("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.dir = root / "pg"
        self.dir.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses root
            shutil.chown(root, "postgres")
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/vigie"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=90)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "vigie")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"),
                  "-w", "-t", "60", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c full_page_writes=off -c max_connections=200", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "-t", "60", "stop")


class Redis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / "redis"
        self.dir.mkdir()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        # Append-only, fsync'd at every write: a stopped Redis comes back with its queues. Never
        # rewritten: the oracle reads every message the dispatcher sent from it (dispatched()).
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--auto-aof-rewrite-percentage", "0",
             "--daemonize", "no"],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, 20)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def dispatched(self) -> set[tuple[int, datetime]]:
        """(placement id, slot) of every run the dispatcher put on a location's queue, read from the
        append-only file: every LPUSH Redis ever accepted, whether a worker took it or not."""
        sent: set[tuple[int, datetime]] = set()
        for path in sorted(self.dir.glob("appendonlydir/*.incr.aof")):
            data, at = path.read_bytes(), 0
            while at < len(data) and data[at:at + 1] == b"*":
                end = data.index(b"\r\n", at)
                count, at, words = int(data[at + 1:end]), end + 2, []
                for _ in range(count):
                    end = data.index(b"\r\n", at)
                    size = int(data[at + 1:end])
                    words.append(data[end + 2:end + 2 + size])
                    at = end + 2 + size + 2
                if words[0].upper() != b"LPUSH" or not words[1].startswith(b"probes."):
                    continue
                for raw in words[2:]:
                    message = json.loads(raw)
                    args = json.loads(base64.b64decode(message["body"]))[0]
                    runs = args[0] if message["headers"]["task"].endswith("run_batch") else [args]
                    sent.update((int(run[0]), datetime.fromisoformat(run[2])) for run in runs)
        return sent


# --- Vigie's processes ------------------------------------------------------------------------------

class Processes:
    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.running: dict[str, subprocess.Popen] = {}
        self.killed: list[subprocess.Popen] = []  # by the chaos, on purpose

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.running[name] = process
        return process

    def worker(self, name: str, queue: str, concurrency: int) -> subprocess.Popen:
        return self.start(name, [*CELERY, "worker", "-Q", queue, "--pool", "threads", "--concurrency",
                                 str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
                                 "--loglevel", "WARNING", "-n", f"{name}@%h"])

    def beat(self, name: str) -> subprocess.Popen:
        return self.start(name, [*CELERY, "beat", "--loglevel", "WARNING",
                                 "--schedule", str(self.logs / f"{name}-schedule")])

    def kill(self, name: str) -> None:
        process = self.running[name]
        self.killed.append(process)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(30)

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in self.running.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- what watches from outside: on-call's webhook receiver and a public poller ---------------------

class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.messages: list[dict] = []
        received = self.messages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    received.append(json.loads(body))
                except ValueError:
                    received.append({"type": "unreadable"})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_):
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Poller(threading.Thread):
    """Reads the public page and the JSON API every half second: every answer's status is counted."""

    PATHS = ("/", "/api/v2/summary.json", "/api/v2/incidents.json")

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        import requests

        while not self.stopping.wait(0.5):
            for path in self.PATHS:
                try:
                    self.statuses[requests.get(self.base + path, timeout=10).status_code] += 1
                except requests.RequestException as exc:
                    self.errors[type(exc).__name__] += 1


# --- the run ----------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration (0.15: the CI size)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) at the end")
    parser.add_argument("--json", help="also write the table as JSON to this file")
    args = parser.parse_args()
    if not 0.05 <= args.scale <= 5:
        parser.error("--scale must be within [0.05, 5]")
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    root = Path(tempfile.mkdtemp(prefix="vigie-chaos-"))
    os.chmod(root, 0o755)
    say(f"working in {root}")
    pg, redis = Postgres(root), Redis(root)
    processes: Processes | None = None
    spool_mounted = False
    poller = None
    try:
        pg.init()
        redis.start()
        interval = max(1, round(10 * args.scale))
        data = root / "data"
        (data / "spool").mkdir(parents=True)
        if os.geteuid() == 0:
            spool_mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(data / "spool")],
                                           capture_output=True).returncode == 0
        sandbox_port, web_port = free_port(), free_port()
        receiver = Receiver()
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "VIGIE_CACHE_URL")}
        env.update({
            "DATABASE_URL": pg.url, "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
            "VIGIE_CACHE_URL": f"redis://127.0.0.1:{redis.port}/1", "VIGIE_DATA_DIR": str(data),
            "VIGIE_DISPATCH_EVERY": str(max(1, min(2, interval))), "VIGIE_ALLOW_PRIVATE_TARGETS": "loopback",
            "VIGIE_DB_RETRY_SECONDS": str(max(10, 6 * interval)),
            "VIGIE_BROKER_VISIBILITY_TIMEOUT": str(max(30, 6 * interval)),
            "SANDBOX_PORT": str(sandbox_port), "SANDBOX_PROBER_TOKEN": secrets.token_urlsafe(24),
            "SANDBOX_PARTNER_TOKEN": secrets.token_urlsafe(24), "SANDBOX_CONTROL_TOKEN": secrets.token_urlsafe(24),
            "SANDBOX_CONTROL_TOKEN_FILE": str(root / "sandbox-control-token"),
            "DJANGO_SETTINGS_MODULE": "vigie.settings", "VIGIE_LOG_LEVEL": "WARNING",
        })
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command
        from django.utils import timezone

        from notifications.models import Channel
        from probes.models import Probe, ProbeLocation

        call_command("migrate", verbosity=0)
        call_command("config", "apply", str(ROOT / "examples" / "demo.yaml"), verbosity=0,
                     stdout=open(os.devnull, "w"))
        Probe.objects.update(interval_s=interval, timeout_s=max(1, min(10, interval)))
        ProbeLocation.objects.update(next_run_at=timezone.now() + timedelta(seconds=3))
        Channel.objects.create(name="on-call (chaos receiver)", kind=Channel.Kind.WEBHOOK, url=receiver.url)

        logs = root / "logs"
        logs.mkdir()
        processes = Processes(logs, env)
        processes.start("sandbox", [PYTHON, "manage.py", "sandbox", "serve", "--port", str(sandbox_port)])
        wait_port(sandbox_port)
        # production's web server (docs/production.md), with two workers
        processes.start("web", [PYTHON, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port",
                                str(web_port), "--workers", "2", "--no-ws", "--respawn-failed-workers",
                                "vigie.wsgi:application"])
        processes.worker("worker-vigie", "vigie", 3)
        for location in LOCATIONS:
            processes.worker(f"worker-{location}", f"probes.{location}", 4)
        processes.beat("beat-1")
        processes.beat("beat-2")
        wait_port(web_port)
        poller = Poller(f"http://127.0.0.1:{web_port}")
        poller.start()
        chaos = Chaos(processes, pg, redis, data / "spool", spool_mounted, interval)
        timeline = play(args.scale, interval, env["SANDBOX_CONTROL_TOKEN"], sandbox_port, chaos)
        poller.stopping.set()
        rows = oracle(timeline, interval, receiver, poller, chaos, sandbox_port, env["SANDBOX_CONTROL_TOKEN"],
                      web_port)
        print_table(rows, args.scale, interval)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
        return 0 if all(row["exact"] for row in rows) else 1
    finally:
        if poller:
            poller.stopping.set()
        if processes:
            processes.stop_all()
        redis.stop()
        try:
            pg.stop("immediate")
        except Exception:  # noqa: BLE001 — stopped already
            pass
        if spool_mounted:
            subprocess.run(["umount", "-l", str(root / "data" / "spool")], capture_output=True)
        if args.keep:
            say(f"kept {root}")
        else:
            for _ in range(5):  # a server's last child may still be writing its files for a moment
                shutil.rmtree(root, ignore_errors=True)
                if not root.exists():
                    break
                time.sleep(1)


class Chaos:
    """The faults Vigie's own parts suffer, each with the window it lasted (for the oracle)."""

    def __init__(self, processes, pg, redis, spool: Path, spool_mounted: bool, interval: int) -> None:
        self.processes, self.pg, self.redis, self.spool = processes, pg, redis, spool
        self.spool_mounted, self.interval = spool_mounted, interval
        self.windows: list[tuple[str, datetime, datetime]] = []
        self.notes: list[str] = []

    def _window(self, what: str, start: datetime) -> None:
        self.windows.append((what, start, datetime.now(dt_timezone.utc)))

    def kill_worker(self, location: str) -> None:
        start = datetime.now(dt_timezone.utc)
        say(f"chaos: SIGKILL worker-{location}")
        self.processes.kill(f"worker-{location}")
        time.sleep(2 * self.interval)
        self.processes.worker(f"worker-{location}", f"probes.{location}", 4)
        self._window(f"worker-{location} killed", start)

    def restart_postgres_with_spool_full(self) -> None:
        start = datetime.now(dt_timezone.utc)
        filler = self.spool / ".filler"
        if self.spool_mounted:
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
            say("chaos: spool disk filled (tmpfs of 256 KiB, full)")
        else:
            os.chmod(self.spool, 0o555)
            self.notes.append("spool disk not really filled (no tmpfs without root): spool made read-only")
            say("chaos: spool folder made read-only (cannot mount a full tmpfs here)")
        say("chaos: PostgreSQL stopped (fast)")
        self.pg.stop("fast")
        time.sleep(3 * self.interval)
        self.pg.start()
        say("chaos: PostgreSQL started again")
        filler.unlink(missing_ok=True)
        os.chmod(self.spool, 0o755)
        self._window("PostgreSQL down, spool disk full", start)

    def stop_redis(self) -> None:
        start = datetime.now(dt_timezone.utc)
        say("chaos: Redis stopped")
        self.redis.stop()
        time.sleep(6 * self.interval)
        self.redis.start()
        say("chaos: Redis started again")
        self._window("Redis down", start)

    def kill_leader(self) -> None:
        from django.db import connection

        from probes.lease import lease_leader

        connection.close()  # PostgreSQL was restarted since this process last asked
        start = datetime.now(dt_timezone.utc)
        lease = lease_leader()
        names = {p.pid: name for name, p in self.processes.running.items() if name.startswith("beat")}
        pid = int(lease.holder.split(":")[1]) if lease else None
        if pid not in names:
            self.notes.append(f"no leading scheduler found to kill (lease: {lease})")
            return
        say(f"chaos: SIGKILL the leading scheduler {names[pid]} ({lease.holder})")
        self.processes.kill(names[pid])
        deadline = time.monotonic() + 30 * self.interval
        while time.monotonic() < deadline:
            now_leader = lease_leader()
            if now_leader and now_leader.holder != lease.holder:
                self.takeover_s = (now_leader.acquired_at - (lease.expires_at - timedelta(
                    seconds=self._lease_seconds()))).total_seconds()
                say(f"chaos: {now_leader.holder} leads, {self.takeover_s:.1f} s after the last renewal")
                break
            time.sleep(0.2)
        self._window("leading scheduler killed", start)

    takeover_s: float | None = None

    @staticmethod
    def _lease_seconds() -> float:
        from probes.lease import lease_seconds

        return lease_seconds()


def play(scale: float, interval: int, token: str, sandbox_port: int, chaos: Chaos) -> dict:
    """The scenario, with the chaos events at their points; returns when each fault was on."""
    from detection.scenarios import Fault, SandboxControl, simulate_outcome

    control = SandboxControl(f"http://127.0.0.1:{sandbox_port}", token)
    control.clear()

    def phase(seconds: float, events: list[tuple[float, callable]]) -> None:
        """Sleep `seconds`, running each event when its share of the phase has passed."""
        start = time.monotonic()
        for share, event in events:
            time.sleep(max(0.0, start + seconds * share - time.monotonic()))
            event()
        time.sleep(max(0.0, start + seconds - time.monotonic()))

    def slots(seconds: float) -> float:
        return max(3, round(seconds * scale / interval)) * interval

    say(f"warm-up: {slots(60):.0f} s, probes every {interval} s at two locations")
    started = datetime.now(dt_timezone.utc)
    phase(slots(60) + interval / 2, [])
    feb_from = datetime.now(dt_timezone.utc)
    for action in ("post", "repost", "follow", "dm"):
        control.set(Fault("quota_exceeded", action))
    say("scenario: feb-2023 (every write refused: quota_exceeded)")
    phase(slots(240), [(0.3, lambda: chaos.kill_worker("sacramento")),
                       (0.6, chaos.restart_postgres_with_spool_full)])
    control.clear()
    feb_until = datetime.now(dt_timezone.utc)
    say("scenario: feb-2023 cleared")
    phase(slots(240), [(0.3, chaos.stop_redis)])
    dm_from = datetime.now(dt_timezone.utc)
    dm_fault = Fault("server_error", "dm")
    # The class expected is the one judge's (the simulator follows the adapters' refusal_class):
    # a DM write's 5xx while reads work is read_only.
    dm_class, _ = simulate_outcome([dm_fault], action="dm", location="sacramento", timeout_ms=10_000)
    control.set(dm_fault)
    say(f"scenario: DM-only outage (server_error on dm, judged {dm_class})")
    phase(slots(180), [(0.4, chaos.kill_leader)])
    control.clear()
    dm_until = datetime.now(dt_timezone.utc)
    say("scenario: DM-only outage cleared; settling")
    phase(slots(150), [])
    return {"started": started, "ended": datetime.now(dt_timezone.utc),
            "injected": [("feb-2023", set(WRITES), "quota_exceeded", feb_from, feb_until),
                         ("DM-only", {"Direct messages"}, dm_class, dm_from, dm_until)]}


def oracle(timeline: dict, interval: int, receiver: Receiver, poller: Poller, chaos: Chaos,
           sandbox_port: int, token: str, web_port: int) -> list[dict]:
    import requests
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from detection.models import Incident
    from probes.models import Account, Artifact, Probe, ProbeLocation, Run

    connection.close()  # the connection from before PostgreSQL's restart is gone
    rows: list[dict] = []

    def row(what: str, expected, found, exact: bool, note: str = "") -> None:
        rows.append({"row": what, "expected": expected, "found": found, "exact": exact, "note": note})

    # Incidents: what the public API says, matched to what was injected.
    api = requests.get(f"http://127.0.0.1:{web_port}/api/v2/incidents.json", timeout=10).json()["incidents"]
    incidents = list(Incident.objects.filter(started_at__gte=timeline["started"]).order_by("started_at"))
    row("incidents", len(timeline["injected"]), f"{len(incidents)} (API lists {len(api)})",
        len(incidents) == len(timeline["injected"]) == len(api))
    for name, components, failure_class, start, end in timeline["injected"]:
        match = next((i for i in incidents if start - timedelta(seconds=interval) <= i.started_at <= end), None)
        if match is None:
            row(f"{name}: incident", "1", "none", False)
            continue
        found = {link.component.name for link in match.incidentcomponent_set.select_related("component")}
        row(f"{name}: components", ", ".join(sorted(components)), ", ".join(sorted(found)), found == components)
        classes = set(Run.objects.filter(scheduled_for__gte=start, scheduled_for__lt=end, outcome="failure")
                      .values_list("failure_class", flat=True))
        row(f"{name}: failure classes", failure_class, ", ".join(sorted(classes)) or "none", classes == {failure_class})
        injected = (end - start).total_seconds()
        measured = match.duration.total_seconds() if match.duration else None
        error = None if measured is None else measured - injected
        row(f"{name}: duration error", f"within ±{interval} s (one interval) of {injected:.0f} s",
            "still open" if error is None else f"{error:+.1f} s", error is not None and abs(error) <= interval)

    # Runs: every slot of every placement from the first run to the end, against the runs stored.
    runs = Run.objects.filter(scheduled_for__gte=timeline["started"])
    duplicated = (runs.values("probe_id", "location_id", "scheduled_for").annotate(n=Count("id"))
                  .filter(n__gt=1).count())
    row("runs duplicated (one slot stored twice)", 0, duplicated, duplicated == 0)
    # Every slot of every placement from its first run to the end, against the runs stored. A slot
    # with no run is: dropped (a worker logged it as expired: the run reached it after its slot);
    # lost (the dispatcher put it on its location's queue — read from Redis' append-only file — yet
    # it was neither stored nor logged); not made (never sent: due while a part was down, or within
    # RECOVERY_S after, and the page said monitoring is delayed); or unexplained (never sent, with
    # nothing down).
    import re

    logs = chaos.processes.logs
    placements = {p.id: (p.probe_id, p.location_id) for p in ProbeLocation.objects.all()}
    dropped_slots = set()
    for path in logs.glob("worker-*.log"):
        for placement_id, slot in re.findall(r"of placement (\d+) \(scheduled for ([^)]+)\) expired",
                                             path.read_text(errors="replace")):
            if int(placement_id) in placements:
                dropped_slots.add((*placements[int(placement_id)], datetime.fromisoformat(slot)))
    sent = defaultdict(list)
    for placement_id, slot in chaos.redis.dispatched():
        sent[placement_id].append(slot)
    lost, not_made, dropped, unexplained = Counter(), Counter(), 0, 0
    end = timeline["ended"] - timedelta(seconds=2 * interval)
    for placement in ProbeLocation.objects.select_related("probe"):
        step = timedelta(seconds=placement.probe.interval_s)
        key = (placement.probe_id, placement.location_id)
        stored = sorted(runs.filter(probe_id=placement.probe_id, location_id=placement.location_id)
                        .values_list("scheduled_for", flat=True))
        if not stored:
            unexplained += 1
            continue
        slot = stored[0]
        while slot <= end:
            near = lambda when: abs((slot - when).total_seconds()) < interval / 2  # noqa: E731
            if not any(near(h) for h in stored):
                if any(near(d) for k1, k2, d in dropped_slots if (k1, k2) == key):
                    dropped += 1
                else:
                    window = next((w for w, a, b in sorted(chaos.windows, key=lambda w: w[1], reverse=True)
                                   if a - step <= slot <= b + step + timedelta(seconds=RECOVERY_S)), None)
                    if any(near(s) for s in sent[placement.id]):
                        lost[window or "nothing down"] += 1
                    elif window is None:
                        unexplained += 1
                    else:
                        not_made[window] += 1
            slot += step
    row("runs lost (dispatched, neither stored nor logged)", 0, sum(lost.values()), not lost,
        "; ".join(f"{n} at “{cause}”" for cause, n in lost.most_common()))
    row("runs dropped as late, each logged", "(the killed worker's, at most)", dropped, True,
        "a run that reaches a worker after its slot is dropped and logged, never run late")
    row("run slots not made while a part was down", "(the page said monitoring is delayed)",
        sum(not_made.values()), True, "; ".join(f"{n} around “{cause}”" for cause, n in not_made.most_common()))
    row("run slots without a run, unexplained", 0, unexplained, unexplained == 0)
    # The spool (probes.spool): runs that finished while PostgreSQL was down go to its disk, which
    # the chaos filled; those the disk refused wait in their worker's memory. Either way they are
    # stored once PostgreSQL is back (or they would count as lost above).
    worker_logs = [path.read_text(errors="replace") for path in logs.glob("worker-*.log")]
    spooled = sum(text.count("database unreachable while storing run ") for text in worker_logs) + sum(
        int(n) for text in worker_logs for n in re.findall(r"database unreachable while storing (\d+) runs", text))
    in_memory = sum(text.count("kept in this worker's memory") for text in worker_logs)
    row("runs made while PostgreSQL was down (the spool, its disk full)", "(informational)",
        f"{spooled}, {in_memory} of them kept in memory", True,
        "the spool's disk refused them: each waited in its worker's memory, then was stored" if in_memory else
        "" if spooled else "no run was in flight while PostgreSQL was down: the full spool was not exercised")

    # Artifacts the probes left on the platform, and the ledger's view of them. A cleanup that
    # failed during an outage (a DM made as the DM outage began, its delete refused with a 5xx) is
    # retried on the ledger's backoff (probes.runner.cleanup_pending, every minute), which at the
    # CI size outlasts the settling phase: wait for the retries already scheduled — the platform is
    # healthy by now — rather than count as left what Vigie is about to clean.
    waited = time.monotonic()
    pending = Artifact.objects.filter(cleaned_at__isnull=True)
    latest = pending.order_by("-next_attempt_at").values_list("next_attempt_at", flat=True).first()
    if latest is not None:
        deadline = time.monotonic() + max(0.0, (latest - timezone.now()).total_seconds()) + CLEANUP_EVERY_S + 10
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(1)
    waited = time.monotonic() - waited
    left = requests.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/artifacts", timeout=10,
                        headers={"Authorization": f"Bearer {token}"}).json()["accounts"]
    # Fixtures are made once and kept on purpose: the partner's repost target (Account.fixture_id),
    # and, where a delivery probe runs, the partner's standing follow of the prober.
    fixtures = Account.objects.exclude(fixture_id="").exclude(fixture_id__isnull=True).count()
    fixtures += Probe.objects.filter(action="delivery", enabled=True).values("platform").distinct().count()
    leftovers = sum(n for account in left.values() for n in account.values()) - fixtures
    pending = Artifact.objects.filter(cleaned_at__isnull=True).count()
    row("artifacts left on the platform", 0, leftovers, leftovers == 0,
        f"{fixtures} kept fixture(s) not counted" + (f"; ledger not cleaned yet: {pending}" if pending else "")
        + (f"; waited {waited:.0f} s after the run for the ledger's scheduled cleanup retries" if waited >= 1 else "")
        + ("" if leftovers == 0 else "; " + json.dumps(left, separators=(",", ":"))))

    # Notifications as on-call's receiver got them.
    by_event = Counter(m.get("id") for m in receiver.messages)
    twice = sum(1 for n in by_event.values() if n > 1)
    kinds = defaultdict(list)
    for message in receiver.messages:
        kinds[message.get("type")].append(message)
    missing_notes = 0
    for incident in incidents:
        for kind in ("incident.opened", "incident.resolved"):
            if not any(json.dumps(m.get("data", {})).find(incident.public_id) >= 0 for m in kinds[kind]):
                missing_notes += 1
    row("notifications sent twice", 0, twice, twice == 0)
    row("incident notifications never sent", 0, missing_notes, missing_notes == 0,
        f"{len(receiver.messages)} received: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(kinds.items())))

    # The public side during the whole run.
    five = sum(n for status, n in poller.statuses.items() if status >= 500)
    row("public 5xx seen", 0, five, five == 0,
        f"{sum(poller.statuses.values())} requests: {dict(sorted(poller.statuses.items()))}"
        + (f"; connection errors {dict(poller.errors)}" if poller.errors else ""))
    # Vigie's own processes that stopped by themselves (not the ones the chaos killed): a worker that
    # dies on a fault it should survive makes every row after it wrong, for a reason no row names.
    died = sorted(name for name, process in chaos.processes.running.items()
                  if process.poll() is not None and process not in chaos.processes.killed)
    unrecoverable = sum(path.read_text(errors="replace").count("Unrecoverable error")
                        for path in logs.glob("*.log"))
    row("processes that stopped by themselves", 0, len(died), not died and not unrecoverable,
        ", ".join(died) + (f"; {unrecoverable} 'Unrecoverable error' in the logs" if unrecoverable else ""))
    row("scheduler takeover after the leader's SIGKILL", f"≤ {2 * int(os.environ['VIGIE_DISPATCH_EVERY'])} s",
        "none" if chaos.takeover_s is None else f"{chaos.takeover_s:.1f} s",
        chaos.takeover_s is not None and chaos.takeover_s <= 2 * int(os.environ["VIGIE_DISPATCH_EVERY"]))
    for note in chaos.notes:
        row("note", "", "", True, note)
    return rows


def print_table(rows: list[dict], scale: float, interval: int) -> None:
    print(f"\nChaos run at scale {scale:g} (probe interval {interval} s):\n")
    width = max(len(r["row"]) for r in rows)
    print(f"| {'row':<{width}} | expected | found | exact | note |")
    print(f"|{'-' * (width + 2)}|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']:<{width}} | {r['expected']} | {r['found']} | {'yes' if r['exact'] else 'NO'} | {r['note']} |")
    print()


if __name__ == "__main__":
    sys.exit(main())
