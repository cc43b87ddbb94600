"""`manage.py up` (what `make run` starts): the embedded demo works end to end, faults included."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_ports(count: int) -> list[int]:
    """Distinct free ports below the ephemeral range: a port the OS hands out for port 0 can be
    taken as the local end of some outgoing connection before the server binds it."""
    ports: list[int] = []
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free port found")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def running(tmp_path):
    port, sandbox_port = free_ports(2)
    # The demo configuration, sped up: probes every 5 s instead of 30.
    config = tmp_path / "demo.yaml"
    config.write_text((ROOT / "examples" / "demo.yaml").read_text().replace("interval: 30", "interval: 5")
                      .replace("interval: 60", "interval: 5").replace("interval: 45", "interval: 5"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(VIGIE_DATA_DIR=str(tmp_path / "var"), PORT=str(port), SANDBOX_PORT=str(sandbox_port),
               VIGIE_DISPATCH_EVERY="1")
    process = subprocess.Popen([sys.executable, "manage.py", "up", "--config", str(config)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    yield process, port, env, tmp_path / "var" / "vigie.sqlite3"
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def components(port: int) -> dict[str, str]:
    with urlopen(f"http://127.0.0.1:{port}/api/v2/components.json", timeout=5) as response:
        return {c["name"]: c["status"] for c in json.load(response)["components"] if not c["group"]}


def runs(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=10) as connection:
        return connection.execute(sql).fetchall()


def test_the_demo_shows_its_components_operational_fed_from_both_locations_and_a_fault_shows(running):
    process, port, env, db = running
    banner = ""
    while "Vigie is running" not in banner:  # after the sandbox's own line: it is started first
        banner = process.stdout.readline()
        assert banner, "up exited before printing its URL"
    assert f"http://127.0.0.1:{port}/" in banner
    # The URL is printed once it answers: no waiting here (a page the public cache does not keep).
    assert urlopen(f"http://127.0.0.1:{port}/oncall/login/", timeout=5).status == 200

    statuses = wait_for(lambda: len(components(port)) == 7 and components(port), 60, "the page")
    assert set(statuses) == {"Posting", "Reposting", "Following", "Direct messages", "Timeline", "Post length limit", "Post delivery"}
    fed = wait_for(lambda: (r := runs(db, "SELECT DISTINCT p.action, l.name FROM probes_run r "
                                         "JOIN probes_probe p ON p.id = r.probe_id "
                                         "JOIN probes_location l ON l.id = r.location_id")) and len(r) == 14 and r,
                   60, "runs of every probe from both locations")
    assert {location for _, location in fed} == {"sacramento", "atlanta"}
    assert set(components(port).values()) == {"operational"}
    html = urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
    assert "All Systems Operational" in html and "Last checked" in html
    # The demo reads what the sandbox platform declares on its own official page (beat → worker).
    wait_for(lambda: runs(db, "SELECT indicator, last_error FROM official_officialsource") == [("none", "")], 40,
             "the official page to be read")

    fault = subprocess.run([sys.executable, "manage.py", "sandbox", "fault", "set", "quota_exceeded",
                            "--action", "post"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert fault.returncode == 0, fault.stderr
    failed = wait_for(lambda: runs(db, "SELECT r.failure_class, r.evidence FROM probes_run r "
                                       "JOIN probes_probe p ON p.id = r.probe_id "
                                       "WHERE p.action = 'post' AND r.outcome = 'failure'"), 30, "a failed post run")
    failure_class, evidence = failed[0]
    assert failure_class == "quota_exceeded"
    assert json.loads(evidence)["status_code"] == 429
    wait_for(lambda: components(port)["Posting"] != "operational", 30, "Posting to leave operational")
    assert components(port)["Timeline"] == "operational"

    # Ctrl-C in a terminal signals the whole process group.
    os.killpg(process.pid, signal.SIGINT)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "CommandError" not in output
    assert re.search(r"Stopped Vigie: the web server, the sandbox platform, 3 workers \(vigie, \w+, \w+\) and the "
                     r"scheduler\. Nothing is left running\.", output), output[-2000:]
    with pytest.raises(OSError):  # the web server is gone with it
        urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_the_feb_2023_scenario_against_the_running_system_is_one_incident_with_measured_times(running):
    process, port, env, db = running
    wait_for(lambda: len(components(port)) == 7 and components(port), 60, "the page")
    interval = 3
    result = subprocess.run(
        [sys.executable, "manage.py", "scenario", "run", "feb-2023", "--scale", "0.05", "--interval", str(interval)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
        raise AssertionError(f"scenario failed:\n{result.stdout}\n{result.stderr[-3000:]}\n--- up:\n{output[-5000:]}")
    assert "platform read-only: writes refused with a daily-limit error (impact critical)" in result.stdout
    (incident,) = runs(db, "SELECT id, title, impact, started_at, detected_at, resolved_at FROM probes_incident")
    members = {name for (name,) in runs(db, "SELECT c.name FROM probes_incidentcomponent ic JOIN probes_component c "
                                            f"ON c.id = ic.component_id WHERE ic.incident_id = {incident[0]}")}
    # Post delivery posts too: refused posts reach no follower.
    assert members == {"Posting", "Reposting", "Following", "Direct messages", "Post delivery"}
    assert incident[2] == "critical"
    started, detected, resolved = (datetime.fromisoformat(t) for t in incident[3:6])
    assert (detected - started).total_seconds() <= interval * 2 + 5  # MTTD
    measured = (resolved - started).total_seconds()
    injected = float(re.search(r"faults cleared after ([\d.]+) s", result.stdout).group(1))
    assert abs(measured - injected) <= interval
    assert components(port)["Timeline"] == "operational"
    # The platform's own page acknowledged it after 5 min × 0.05 = 15 s; Vigie, reading that page
    # every 20 s, measures the time to acknowledge within one of its reads of the truth.
    truth = float(re.search(r"the official status page acknowledges ([\d.]+) s after", result.stdout).group(1))
    assert truth == 15
    (acknowledged_at, official_incident) = runs(db, "SELECT acknowledged_at, official_incident_id FROM "
                                                f"official_incidentacknowledgement WHERE incident_id = {incident[0]}")[0]
    assert official_incident is not None
    time_to_acknowledge = (datetime.fromisoformat(acknowledged_at) - started).total_seconds()
    assert abs(time_to_acknowledge - truth) <= 20
