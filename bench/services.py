"""What `make bench` starts and always stops: a private PostgreSQL database and Redis db numbers on
the local servers, child processes in their own sessions, nginx from docs/nginx.conf, and wrk.

Nothing here touches Vigie's own data: the database is created for the run and dropped after it
(even on Ctrl-C or an error), the Redis db numbers are flushed before and after, and every process
started is stopped by its process group id.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MANAGE = str(ROOT / "manage.py")
CELERY = [PYTHON, "-m", "celery", "-A", "vigie"]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1: any, or one of BENCH_PORTS (e.g. "24000-24999") when the
    machine's ports are shared out between users."""
    span = os.environ.get("BENCH_PORTS", "")
    if span:
        low, _, high = span.partition("-")
        for port in random.sample(range(int(low), int(high or low) + 1), int(high or low) + 1 - int(low)):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in BENCH_PORTS={span}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


def ensure_debian_packages(binaries: dict[str, str]) -> None:
    """Install the Debian packages of missing binaries (binary → package), as the bench needs them."""
    missing = sorted({package for binary, package in binaries.items() if shutil.which(binary) is None
                      and not Path(f"/usr/sbin/{binary}").exists()})
    if not missing:
        return
    log(f"installing {' '.join(missing)} with apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


def binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


# --- processes -------------------------------------------------------------------------------------

@dataclass
class Processes:
    """Children started in their own sessions: stopped by process group, their CPU read from /proc."""

    logs: Path
    running: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.running[name] = process
        return process

    def check(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with code {process.returncode}:\n{tail}")

    def stop(self, *names: str, timeout: float = 15.0) -> None:
        names = names or tuple(self.running)
        for name in names:
            process = self.running.get(name)
            if process is not None and process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            process = self.running.pop(name, None)
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process.pid, signal.SIGKILL)  # whatever of the group is left (pool children)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def session_pids(self, *names: str) -> list[int]:
        """Every live process of these children's sessions (pool children, gunicorn workers…)."""
        sessions = {self.running[n].pid for n in (names or self.running) if n in self.running}
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat and int(stat[3]) in sessions:  # field 6: session id
                    pids.append(int(entry.name))
        return pids

    def cpu_seconds(self, *names: str) -> float:
        """User + system CPU of every process of these sessions, with that of reaped children."""
        total = 0
        for pid in self.session_pids(*names):
            stat = _stat(pid)
            if stat:
                total += sum(int(v) for v in stat[11:15])  # utime stime cutime cstime
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self, *names: str) -> dict[int, float]:
        return {pid: rss for pid in self.session_pids(*names) if (rss := rss_mb(pid)) is not None}


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 onwards


def cpu_seconds_of(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        stat = _stat(pid)
        if stat:
            total += int(stat[11]) + int(stat[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --- PostgreSQL and Redis ----------------------------------------------------------------------------

def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


@dataclass
class PrivateDatabase:
    """A database of its own on the local server, dropped at the end (its connections ended first)."""

    server_url: str  # postgres://user@host:port (any database name is replaced)
    name: str
    created: bool = False

    @property
    def url(self) -> str:
        return with_database(self.server_url, self.name)

    def _admin(self):
        import psycopg

        return psycopg.connect(with_database(self.server_url, "postgres"), autocommit=True)

    def create(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.name):
            raise ValueError(f"unsafe database name {self.name!r}")
        with self._admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {self.name}")
        self.created = True

    def drop(self) -> None:
        if not self.created:
            return
        with self._admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        self.created = False

    def sessions(self) -> int:
        """Connections ever opened to this database (PostgreSQL 14+)."""
        with self._admin() as admin:
            row = admin.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [self.name]).fetchone()
            return int(row[0]) if row else 0

    def server_cpu_seconds(self) -> float:
        """CPU of the whole PostgreSQL server: its live processes, and through the postmaster's
        cutime/cstime the backends that already exited (one per connection closed)."""
        with self._admin() as admin:
            data = admin.execute("SHOW data_directory").fetchone()[0]
        postmaster = int((Path(data) / "postmaster.pid").read_text().split()[0])
        total = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat and int(stat[1]) == postmaster:  # field 4: parent
                    total += int(stat[11]) + int(stat[12])
        stat = _stat(postmaster)
        total += sum(int(v) for v in stat[11:15])
        return total / os.sysconf("SC_CLK_TCK")

    def free_connections(self) -> int:
        with self._admin() as admin:
            limit = int(admin.execute("SHOW max_connections").fetchone()[0])
            used = admin.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
            return limit - used


def ensure_postgres(host: str, port: int, started: list[str]) -> None:
    if subprocess.run(["pg_isready", "-q", "-h", host, "-p", str(port)]).returncode == 0:
        return
    log("starting PostgreSQL")
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True)
    started.append(f"postgres:{version}")
    for _ in range(30):
        if subprocess.run(["pg_isready", "-q", "-h", host, "-p", str(port)]).returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError("PostgreSQL did not start")


def ensure_redis(url: str, workdir: Path, started: list[str]) -> None:
    import redis

    parts = urlsplit(url)
    try:
        redis.Redis(host=parts.hostname, port=parts.port or 6379).ping()
        return
    except redis.ConnectionError:
        pass
    log("starting Redis")
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", parts.hostname, "--port", str(parts.port or 6379),
                    "--save", "", "--appendonly", "no", "--dir", str(workdir),
                    "--pidfile", str(workdir / "redis.pid"), "--logfile", str(workdir / "redis.log")], check=True)
    started.append(f"redis:{workdir / 'redis.pid'}")
    for _ in range(30):
        try:
            redis.Redis(host=parts.hostname, port=parts.port or 6379).ping()
            return
        except redis.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError("Redis did not start")


def stop_started_servers(started: list[str]) -> None:
    """Stop the servers this run had to start itself (and only those)."""
    for what in reversed(started):
        kind, _, detail = what.partition(":")
        if kind == "postgres":
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", detail, "main", "stop"])
        elif kind == "redis":
            try:
                os.kill(int(Path(detail).read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
    started.clear()


def redis_flush(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url).flushdb()
    except redis.RedisError:
        pass


# --- nginx -----------------------------------------------------------------------------------------

NGINX_MAIN = """\
# Generated by bench/services.py for one bench run; the Vigie server block is docs/nginx.conf.
worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;

    include {work}/vigie.conf;

    # The yardstick: plain files of the same sizes, the same file cache, no try_files, no added headers.
    server {{
        listen 127.0.0.1:{static_port};
        root {static_root};
        open_file_cache max=10000 inactive=60s;
        open_file_cache_valid 1s;
        location / {{ }}
    }}
}}
"""


def nginx_site_conf(*, port: int, root: Path, upstream_port: int) -> str:
    """docs/nginx.conf with the bench's port, folder and gunicorn address in place of production's."""
    text = (ROOT / "docs" / "nginx.conf").read_text()
    replacements = [
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("listen [::]:80;", ""),
        ("root /srv/vigie;", f"root {root};"),
        ("server 127.0.0.1:8000", f"server 127.0.0.1:{upstream_port}"),
    ]
    for old, new in replacements:
        if old not in text:
            raise RuntimeError(f"docs/nginx.conf no longer contains {old!r}: update bench/services.py")
        text = text.replace(old, new)
    return text


def nginx_start(processes: Processes, *, work: Path, port: int, static_port: int, root: Path, static_root: Path,
                upstream_port: int, workers: int) -> None:
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "vigie.conf").write_text(nginx_site_conf(port=port, root=root, upstream_port=upstream_port))
    (work / "nginx.conf").write_text(NGINX_MAIN.format(work=work, static_port=static_port, static_root=static_root,
                                                       workers=workers))
    command = [binary("nginx"), "-c", str(work / "nginx.conf"), "-p", str(work)]
    test = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if test.returncode != 0:
        raise RuntimeError(f"nginx refuses the configuration:\n{test.stderr}")
    process = processes.start("nginx", command, os.environ.copy())
    wait_for_port(port, process)
    wait_for_port(static_port, process)


# --- wrk -------------------------------------------------------------------------------------------

@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float | None  # None when no request completed
    p99_ms: float | None
    requests: int
    errors: int  # socket errors and non-2xx/3xx answers


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, *, connections: int, threads: int, seconds: float, headers: dict[str, str] | None = None) \
        -> WrkResult:
    command = [binary("wrk"), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    try:
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        count = int(re.search(r"(\d+) requests in", out).group(1))
        p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)) if count else None
        p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)) if count else None
    except AttributeError:
        raise RuntimeError(f"cannot read wrk's output for {url}:\n{out}") from None
    errors = 0
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in match.groups())
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    return WrkResult(rate, p50, p99, count, errors)


# --- profiles ----------------------------------------------------------------------------------------

def py_spy_start(py_spy: str, *, pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """Sample a process and its children for `seconds` into collapsed stacks (py-spy's raw format,
    one "frame;frame;… count" line per stack), without pausing it. Only the thread holding the GIL
    is sampled (--gil): where the CPU goes, not the threads waiting on a socket."""
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil",
                             "--rate", "100",
                             "--duration", str(max(1, int(seconds))), "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
