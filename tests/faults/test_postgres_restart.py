"""PostgreSQL restarted while probes run, for real: runs made meanwhile wait in the spool
(probes.spool), are stored once the database is back — within the retry budget, or by the next run
after it — exactly once, in the order they started, with the artifacts they made on record and
cleaned, and evaluation catches up in that order.

The restarted server is a private cluster in a temporary folder (its own port), so the shared
server other tests use is never touched: the test runs the same on the SQLite and PostgreSQL legs.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.faults.figures import figure
from tests.conftest import PARTNER_TOKEN, PROBER_TOKEN, make_probe
from tests.test_up import free_ports

ROOT = Path(__file__).resolve().parents[2]


# --- in-process: the spool's order and the ledger it carries -------------------------------------

def _payload(placement, started_at, *, failure_class: str = "", artifacts=()) -> dict:
    """A run as `run_record` writes it to the spool when the database is unreachable."""
    return {
        "key": str(uuid.uuid4()), "probe_id": placement.probe_id, "location_id": placement.location_id,
        "scheduled_for": started_at.isoformat(), "started_at": started_at.isoformat(),
        "finished_at": (started_at + timedelta(seconds=1)).isoformat(), "latency_ms": 1000,
        "outcome": "failure" if failure_class else "success", "failure_class": failure_class,
        "error": f"simulated {failure_class}" if failure_class else "", "steps": [],
        "evidence": {"failure_class": failure_class} if failure_class else {}, "cleanup": "none",
        "artifacts": list(artifacts),
    }


@pytest.fixture
def spool_dir(settings, tmp_path):
    settings.RUN_SPOOL_DIR = tmp_path / "spool"
    return settings.RUN_SPOOL_DIR


@pytest.mark.django_db(transaction=True)
def test_runs_waiting_in_the_spool_are_stored_and_evaluated_in_the_order_they_started(platform, locations,
                                                                                      spool_dir):
    from probes import spool
    from detection.models import PlacementStateChange
    from probes.models import ProbeLocation, Run
    from probes.runner import run_record

    probe = make_probe(platform, "post", locations[:1], component="Posting")
    placement = ProbeLocation.objects.get(probe=probe)
    now = timezone.now()
    first, second, third = (_payload(placement, now - timedelta(seconds=s), failure_class=c)
                            for s, c in ((90, "server_error"), (60, "server_error"), (30, "")))
    # They finished waiting in another order than they started (threads racing for the database).
    for payload in (third, first, second):
        spool.spool_write(payload)

    # The next run recorded with the database up joins the queue instead of jumping ahead of it.
    latest = run_record(key=str(uuid.uuid4()), placement=placement, scheduled_for=now, started_at=now,
                        latency_ms=40, failure=None, steps=[], evidence={}, cleanup="none", secrets=[])

    assert latest.pk is not None and not spool.spool_pending()
    stored = list(Run.objects.order_by("id").values_list("key", flat=True))
    assert [str(k) for k in stored] == [first["key"], second["key"], third["key"], str(latest.key)]
    placement.refresh_from_db()
    # Not skipped (every run counted) and not backwards (the failures before the successes).
    assert placement.recent == "FFSS"
    assert placement.evaluated_until == now and placement.state == "up"
    changes = [(c.old_state, c.new_state, c.run.key) for c in PlacementStateChange.objects.order_by("id")]
    assert [(old, new, str(key)) for old, new, key in changes] == [
        ("unknown", "failing", second["key"]), ("failing", "up", str(latest.key))]


@pytest.mark.django_db(transaction=True)
def test_runs_the_spools_disk_refuses_wait_in_memory_and_are_stored_in_order(platform, locations, settings,
                                                                             tmp_path, monkeypatch, caplog):
    """The database down and the spool's disk refusing too (full, read-only; here its folder cannot
    be made, a file is in the way — refused by the OS, root or not): the runs wait in the worker's
    memory, said in the log, and are stored with the spooled ones, in the order they started."""
    from probes import spool
    from probes.models import ProbeLocation, Run
    from probes.runner import run_record

    monkeypatch.setattr(spool, "_held", {})
    (tmp_path / "disk").write_text("a file where the spool's folder should be")
    settings.RUN_SPOOL_DIR = tmp_path / "disk" / "spool"
    probe = make_probe(platform, "post", locations[:1], component="Posting")
    placement = ProbeLocation.objects.get(probe=probe)
    now = timezone.now()
    first, second = (_payload(placement, now - timedelta(seconds=s), failure_class="server_error") for s in (60, 30))
    for payload in (second, first):  # they finished waiting in another order than they started
        spool.spool_keep(payload)
    assert spool.spool_pending() and spool.spool_holds(first["key"]) == first
    assert caplog.text.count("kept in this worker's memory") == 2

    # The next run recorded with the database up joins them instead of jumping ahead.
    latest = run_record(key=str(uuid.uuid4()), placement=placement, scheduled_for=now, started_at=now,
                        latency_ms=40, failure=None, steps=[], evidence={}, cleanup="none", secrets=[])

    assert latest.pk is not None and not spool.spool_pending()
    stored = [str(key) for key in Run.objects.order_by("id").values_list("key", flat=True)]
    assert stored == [first["key"], second["key"], str(latest.key)]
    placement.refresh_from_db()
    assert placement.recent == "FFS"


@pytest.mark.django_db
def test_a_run_stored_after_a_later_one_never_moves_the_evaluation_backwards(platform, locations, spool_dir):
    """What the spool's ordering avoids on one machine can still happen across machines (two
    workers of one location): the earlier run is kept on record and in the rollups, but the state
    machine, already past it, does not go back in time."""
    from probes.models import ProbeLocation, Run, RunHour
    from detection.simulation import record_run

    probe = make_probe(platform, "post", locations[:1])
    placement = ProbeLocation.objects.get(probe=probe)
    now = timezone.now().replace(minute=30)
    record_run(placement, now - timedelta(seconds=30))
    record_run(placement, now - timedelta(seconds=60), failure_class="server_error")

    placement.refresh_from_db()
    assert (placement.state, placement.recent, placement.evaluated_until) == ("up", "S", now - timedelta(seconds=30))
    assert placement.last_run_at == now - timedelta(seconds=30) and placement.last_failure_at is None
    assert Run.objects.count() == 2 and RunHour.objects.get().runs == 2 and RunHour.objects.get().failures == 1


@pytest.mark.django_db(transaction=True)
def test_artifacts_made_while_the_database_was_down_are_put_on_record_with_their_run(platform, locations, spool_dir):
    from probes import spool
    from probes.models import Account, Artifact, ProbeLocation, Run

    probe = make_probe(platform, "repost", locations[:1])
    placement = ProbeLocation.objects.get(probe=probe)
    prober = Account.objects.get(role="prober")
    now = timezone.now()
    made = now - timedelta(minutes=5)

    def state(kind: str, remote_id: str, cleaned: bool) -> dict:
        return {"account_id": prober.id, "probe_id": probe.id, "kind": kind, "remote_id": remote_id,
                "attempts": 1, "last_error": "" if cleaned else "HTTP 503",
                "created_at": made.isoformat(), "cleaned_at": now.isoformat() if cleaned else None,
                "next_attempt_at": (now + timedelta(seconds=60)).isoformat()}

    # An earlier run's cleaned row of the same reblog: made again, not undone: to be cleaned again.
    other_key = uuid.uuid4()
    Artifact.objects.create(run_key=other_key, probe=probe, account=prober, kind="reblog", remote_id="r1",
                            cleaned_at=made)
    # A later run owns a row this run cleaned: that run's own record decides.
    later_key = uuid.uuid4()
    Artifact.objects.create(run_key=later_key, probe=probe, account=prober, kind="reblog", remote_id="r2")
    payload = _payload(placement, now - timedelta(seconds=30), artifacts=[
        state("status", "s1", cleaned=True), state("reblog", "r1", cleaned=False), state("reblog", "r2", cleaned=True)])
    spool.spool_write(payload)

    assert spool.spool_drain(deadline=time.monotonic() + 10) == 1
    assert Run.objects.filter(key=payload["key"]).count() == 1
    rows = {a.remote_id: a for a in Artifact.objects.all()}
    assert str(rows["s1"].run_key) == payload["key"] and rows["s1"].cleaned_at == now
    assert str(rows["r1"].run_key) == payload["key"] and rows["r1"].cleaned_at is None
    assert rows["r1"].attempts == 1 and rows["r1"].last_error == "HTTP 503" and rows["r1"].created_at == made
    assert rows["r2"].run_key == later_key and rows["r2"].cleaned_at is None
    # Stored once: draining the same run again (a second machine's copy, a retry) changes nothing.
    spool.spool_write(payload)
    assert spool.spool_drain(deadline=time.monotonic() + 10) == 1
    assert Run.objects.filter(key=payload["key"]).count() == 1 and Artifact.objects.count() == 3


# --- for real: a private PostgreSQL cluster restarted under a process making runs -----------------

def _pg_bin() -> Path | None:
    def version(path: str) -> tuple:
        return tuple(int(part) if part.isdigit() else 0 for part in Path(path).parts[-3].split("."))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    return Path(found[-1]).parent if found else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1, trust auth. PostgreSQL refuses to run as root,
    so as root its files belong to the `postgres` user and its commands run as that user."""

    def __init__(self, bin_dir: Path, port: int) -> None:
        self.bin, self.port = bin_dir, port
        self.dir = Path(tempfile.mkdtemp(prefix="vigie-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgres://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c full_page_writes=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres") as conn:
            return conn.execute(sql, params).fetchall()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, which PostgreSQL refuses, and there is no postgres user to run it as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root, and runuser (to start PostgreSQL as the postgres user) is missing")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed")
    for port in free_ports(3):  # a port free a moment ago may be taken by the time the server binds it
        private = PrivateCluster(bin_dir, port)
        try:
            private.init()
            private.start()
            break
        except subprocess.CalledProcessError:
            private.remove()
    else:
        raise AssertionError("the private PostgreSQL cluster did not start on any of 3 free ports")
    try:
        yield private
    finally:
        private.remove()


def _driver() -> None:
    """Runs in a subprocess pointed at the private cluster: sets up one post probe at two locations,
    then performs runs when told (one JSON command per stdin line) and reports on stdout."""
    from django.conf import settings
    from django.db import connection

    from probes.models import Account, Location, Platform, Probe, ProbeLocation
    from detection.models import Component
    from probes.runner import run_execute

    sandbox_url, up_name, down_name = sys.argv[1:4]
    platform = Platform.objects.create(name="Sandbox", slug="sandbox", kind="sandbox", base_url=sandbox_url)
    Account.objects.create(platform=platform, role="prober", username="vigie_prober", token=PROBER_TOKEN)
    Account.objects.create(platform=platform, role="partner", username="vigie_partner", token=PARTNER_TOKEN)
    probe = Probe.objects.create(name="Post", slug="sandbox-post", platform=platform, action="post", interval_s=30,
                                 timeout_s=15, latency_threshold_ms=60_000)
    placements = {name: ProbeLocation.objects.create(probe=probe, location=Location.objects.create(name=name)).id
                  for name in (up_name, down_name)}
    Component.objects.create(name="Posting").probes.add(probe)
    connection.close()

    def say(message: dict) -> None:
        print(json.dumps(message), flush=True)

    def one_run(name: str, results: list) -> None:
        key = str(uuid.uuid4())
        try:
            run = run_execute(placement_id=placements[name], run_key=key, scheduled_for=timezone.now())
            results.append({"location": name, "key": key, "stored": run.pk is not None, "outcome": run.outcome})
        except Exception as exc:  # reported: the test fails on it
            results.append({"location": name, "key": key, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            connection.close()

    say({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "budget":
            settings.VIGIE_DB_RETRY_SECONDS = command["seconds"]
            say({"budget": command["seconds"]})
        elif command["do"] == "runs":
            results: list = []
            threads = []
            for i in range(command["each"]):
                if i:
                    time.sleep(command["stagger"])
                for name in (up_name, down_name):
                    threads.append(threading.Thread(target=one_run, args=(name, results)))
                    threads[-1].start()
            say({"launched": len(threads)})
            for thread in threads:
                thread.join()
            say({"runs": results})
        else:
            return


DRIVER = "import django; django.setup(); from tests.faults.test_postgres_restart import _driver; _driver()"


class Driver:
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def send(self, **command) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def expect(self, key: str, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.lines.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() < deadline and self.process.poll() is None:
                    continue
                raise AssertionError(f"the driver said nothing with {key!r} within {timeout} s "
                                     f"(exit code {self.process.poll()})") from None
            if key in message:
                return message[key]


def _past_their_reads(cluster: PrivateCluster) -> int:
    """Runs past their last read before the action (the accounts), each on its own connection:
    from here on they touch the database only once their post is answered."""
    return cluster.query("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' AND pid <> pg_backend_pid() "
                         "AND query LIKE %s", '%FROM "probes_account"%')[0][0]


def _spooled(data_dir: Path) -> int:
    return len(list((data_dir / "spool").glob("*.json")))


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def test_runs_made_while_postgresql_restarts_are_stored_once_in_order_and_evaluated(cluster, sandbox, tmp_path):
    data_dir = tmp_path / "data"
    suffix = uuid.uuid4().hex[:6]
    up, down = f"sac-{suffix}", f"atl-{suffix}"
    # Only the private cluster, and this process's own embedded broker and cache: what the runs
    # announce must not reach the shared broker other tests' workers consume.
    shared = ("CELERY_BROKER_URL", "VIGIE_CACHE_URL", "VIGIE_PUBLISH_DIR")
    env = {k: v for k, v in os.environ.items() if k not in shared}
    env.update(DATABASE_URL=cluster.url, VIGIE_DATA_DIR=str(data_dir), VIGIE_DB_RETRY_SECONDS="40",
               VIGIE_ALLOW_PRIVATE_TARGETS="loopback", VIGIE_LOG_LEVEL="ERROR",
               DJANGO_SETTINGS_MODULE="vigie.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, sandbox.url, up, down],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    driver = Driver(process)
    made: list[dict] = []
    try:
        driver.expect("ready", 60)
        driver.send(do="runs", each=1, stagger=0)
        driver.expect("launched", 30)
        baseline = driver.expect("runs", 60)
        assert all(r.get("stored") for r in baseline), baseline
        made += baseline
        sandbox.fault("quota_exceeded", "post", location=down)  # from now on one location fails

        # 1. An outage shorter than the retry budget. The database stops while the runs are on the
        # platform (their posts held there), so they finish while it is down.
        slow = sandbox.fault("slow:3000", "post")
        driver.send(do="runs", each=3, stagger=0.3)
        assert driver.expect("launched", 30) == 6
        _wait_until(lambda: _past_their_reads(cluster) == 6, 30, "the 6 runs have read what they need")
        cluster.stop("fast")
        sandbox.control("DELETE", f"/_sandbox/faults/{slow['id']}")
        _wait_until(lambda: _spooled(data_dir) == 6, 30, "the 6 runs made during the outage are in the spool")
        time.sleep(1.0)
        restarted = time.monotonic()
        cluster.start()
        during = driver.expect("runs", 90)
        figure("PostgreSQL back → the 6 runs made while it was down stored", time.monotonic() - restarted)
        assert [r.get("error") for r in during if r.get("error")] == []
        assert all(r["stored"] for r in during), during
        assert _spooled(data_dir) == 0
        made += during

        # 2. An outage longer than the budget: the runs stay in the spool, not lost, and the next
        # runs once the database is back store them first, then themselves.
        driver.send(do="budget", seconds=2)
        driver.expect("budget", 30)
        slow = sandbox.fault("slow:3000", "post")
        driver.send(do="runs", each=2, stagger=0.3)
        assert driver.expect("launched", 30) == 4
        _wait_until(lambda: _past_their_reads(cluster) == 4, 30, "the 4 runs have read what they need")
        cluster.stop("fast")
        sandbox.control("DELETE", f"/_sandbox/faults/{slow['id']}")
        beyond = driver.expect("runs", 60)
        assert [r.get("error") for r in beyond if r.get("error")] == []
        assert not any(r["stored"] for r in beyond), beyond
        assert _spooled(data_dir) == 4
        cluster.start()
        driver.send(do="runs", each=1, stagger=0)
        driver.expect("launched", 30)
        after = driver.expect("runs", 60)
        assert all(r.get("stored") for r in after), after
        assert _spooled(data_dir) == 0
        made += beyond + after
        driver.send(do="quit")
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    # Every run made is stored exactly once.
    rows = cluster.query(
        "SELECT r.id, r.key::text, l.name, r.started_at, r.outcome FROM probes_run r "
        "JOIN probes_location l ON l.id = r.location_id ORDER BY r.id")
    assert sorted(key for _, key, *_ in rows) == sorted(r["key"] for r in made)
    assert len(made) == 14
    by_location = {name: [row for row in rows if row[2] == name] for name in (up, down)}
    for name, runs in by_location.items():
        # Stored in the order they started, so evaluated in that order.
        assert [r[3] for r in runs] == sorted(r[3] for r in runs), name
    assert [r[4] for r in by_location[up]] == ["success"] * 7
    assert [r[4] for r in by_location[down]] == ["success"] + ["failure"] * 6

    # Evaluation caught up in order: nothing skipped, nothing backwards.
    placements = dict((name, rest) for name, *rest in cluster.query(
        "SELECT l.name, p.id, p.state, p.recent, p.consecutive_failures, p.evaluated_until, p.streak_started_at "
        "FROM probes_probelocation p JOIN probes_location l ON l.id = p.location_id"))
    _, state, recent, _, evaluated_until, _ = placements[up]
    assert (state, recent, evaluated_until) == ("up", "S" * 7, by_location[up][-1][3])
    down_id, state, recent, failures, evaluated_until, streak_started_at = placements[down]
    assert (state, recent, failures) == ("failing", "S" + "F" * 6, 6)
    assert evaluated_until == by_location[down][-1][3]
    assert streak_started_at == by_location[down][1][3]  # the first failing run, made during the outage
    changes = cluster.query("SELECT c.old_state, c.new_state, r.key::text FROM probes_placementstatechange c "
                            "JOIN probes_run r ON r.id = c.run_id WHERE c.placement_id = %s ORDER BY c.id", down_id)
    assert changes == [("unknown", "up", by_location[down][0][1]), ("up", "failing", by_location[down][2][1])]
    assert cluster.query("SELECT status FROM probes_component") == [("partial_outage",)]

    # Every post made — most while the database was down — is on record and cleaned, on the
    # ledger and on the platform.
    artifacts = cluster.query("SELECT run_key::text, kind, cleaned_at IS NOT NULL FROM probes_artifact")
    assert sorted(key for key, *_ in artifacts) == sorted(r[1] for r in rows if r[4] == "success")
    assert all(kind == "status" and cleaned for _, kind, cleaned in artifacts)
    assert sandbox.artifacts()["vigie_prober"]["statuses"] == 0
