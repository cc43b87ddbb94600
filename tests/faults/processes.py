"""Real processes for fault tests: a private Redis, Celery workers and beat, a web server.

Each process starts in its own session, so a test can kill it with everything it forked (a whole
worker with its pool children) and the fixture stops whatever is left, by process group.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.probes.test_worker import database_url

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float = 60.0, every: float = 0.2, what: str = "condition"):
    """Poll until `predicate` returns something truthy; generous deadlines for a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class Processes:
    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def env(self, broker_url: str | None = None, **extra: str) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": database_url(), "VIGIE_DATA_DIR": str(settings.DATA_DIR),
                "CELERY_BROKER_URL": broker_url or settings.CELERY_BROKER_URL, **extra}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}-{len(self.started)}.log", "wb")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        process.log_path = log.name
        log.close()
        self.started.append(process)
        return process

    def worker(self, queues: list[str], *, pool: str = "threads", concurrency: int = 2,
               broker_url: str | None = None, **extra_env: str) -> subprocess.Popen:
        return self.start("worker", [
            sys.executable, "-m", "celery", "-A", "vigie", "worker", "-Q", ",".join(queues),
            "--pool", pool, "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel", "INFO", "-n", f"fault-{uuid.uuid4().hex[:6]}@%h",
        ], self.env(broker_url, **extra_env))

    def beat(self, *, broker_url: str | None = None, **extra_env: str) -> subprocess.Popen:
        return self.start("beat", [
            sys.executable, "-m", "celery", "-A", "vigie", "beat", "--loglevel", "INFO",
            "--schedule", str(self.logs / f"beat-schedule-{uuid.uuid4().hex[:6]}"),
        ], self.env(broker_url, **extra_env))

    def web(self, *, broker_url: str | None = None, **extra_env: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        # production's web server (docs/production.md)
        process = self.start("web", [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
                                     "--port", str(port), "--workers", "1", "--no-ws", "vigie.wsgi:application"],
                             self.env(broker_url, **extra_env))
        url = f"http://127.0.0.1:{port}"

        def answers():
            try:
                return requests.get(url + "/api/v2/status.json", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(answers, timeout=60, what="the web server")
        return process, url

    def redis(self, port: int | None = None) -> tuple[subprocess.Popen, int]:
        """A private redis-server, in memory only: what it held is gone when it is killed."""
        port = port or free_port()
        process = self.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--daemonize", "no"], dict(os.environ))

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=20, every=0.1, what=f"redis-server on port {port}")
        return process, port

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL the process and all it forked, as a machine losing it would."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(20)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in self.started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(process)
            try:  # pool children left behind by a parent killed alone
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log(self, process: subprocess.Popen) -> str:
        return Path(process.log_path).read_text(errors="replace")


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def redis_server_installed():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI installs it")
