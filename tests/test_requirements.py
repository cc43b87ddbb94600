"""requirements.txt holds what Vigie needs to run, requirements-test.txt adds the test tools; each is
complete. A production image installs only the first: the runtime-only check below imports Vigie
with nothing on the path but the runtime packages and what they declare, and opens the Celery
app's Redis transport, the import that once failed with `ModuleNotFoundError: packaging`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[a-z,]+\])?==[0-9][^\s;]*$")


def lines(name: str) -> list[str]:
    return [line.strip() for line in (ROOT / name).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def names(name: str) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in lines(name) if not line.startswith("-r")}


def test_every_line_is_pinned_and_the_test_file_includes_the_runtime():
    runtime, tests = lines("requirements.txt"), lines("requirements-test.txt")
    assert all(PIN.match(line) for line in runtime), [line for line in runtime if not PIN.match(line)]
    assert tests[0] == "-r requirements.txt"
    assert all(PIN.match(line) for line in tests[1:]), [line for line in tests[1:] if not PIN.match(line)]


def test_the_two_files_are_disjoint_and_test_tools_stay_out_of_the_runtime():
    runtime, tests = names("requirements.txt"), names("requirements-test.txt")
    assert not runtime & tests
    assert {"pytest", "selenium", "schemathesis", "hypothesis"} <= tests
    assert {"packaging", "drf-spectacular-sidecar", "celery", "redis", "django", "feedparser"} <= runtime


def test_the_makefile_installs_the_runtime_for_run_and_both_for_test():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: \$\(VENV\)/\.runtime$", makefile, re.M)
    assert re.search(r"^test: \$\(VENV\)/\.installed$", makefile, re.M)
    assert "pip install --quiet -r requirements.txt" in makefile
    assert "pip install --quiet -r requirements-test.txt" in makefile


def _closure(roots: list[str]) -> set[metadata.Distribution]:
    """The installed distributions of `roots` and of everything they declare, extras included."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(line) for line in roots]
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        dist = metadata.distribution(requirement.name)
        extras = set(requirement.extras)
        if key in seen and not extras:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append(child)
    return set(seen.values())


def test_a_runtime_only_install_runs_the_celery_app_on_a_redis_broker(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    for dist in _closure(lines("requirements.txt")):
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists() and top != "..":
                (site / top).symlink_to(source)
    code = textwrap.dedent("""
        import os, sys
        assert not any("site-packages" in p and "runtime-only" not in p for p in sys.path if p), sys.path
        os.environ["DJANGO_SETTINGS_MODULE"] = "vigie.settings"
        import django
        django.setup()
        from django.urls import resolve
        resolve("/api/docs/")
        import vigie.urls, probes.tasks, notifications.tasks
        from vigie.celery import app
        connection = app.connection_for_write("redis://127.0.0.1:1/0")
        connection.transport  # loads kombu.transport.redis, which imports packaging
        import drf_spectacular_sidecar
        print("runtime ok")
    """)
    site = site.rename(tmp_path / "runtime-only")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=f"{site}{os.pathsep}{ROOT}", PYTHONNOUSERSITE="1")
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runtime ok" in result.stdout
