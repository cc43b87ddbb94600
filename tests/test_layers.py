"""Imports run one way along the flow (docs/architecture.md): the contracts in .importlinter hold,
and they catch an upward import when one is added."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", "--config", str(root / ".importlinter")], cwd=root,
                          capture_output=True, text=True, timeout=240, env={"PYTHONPATH": str(root), "PATH": ""})


def test_the_layers_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("lower, upper", [("platforms/http.py", "probes.models"),
                                          ("probes/runner.py", "detection.evaluation"),
                                          ("detection/incidents.py", "statuspage.cache"),
                                          ("sandbox/state.py", "probes.models")])
def test_an_upward_import_breaks_them(tmp_path, lower, upper):
    for package in ("vigie", "oncall", "notifications", "statuspage", "official", "detection", "probes", "platforms",
                    "sandbox"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    module = tmp_path / lower
    module.write_text(module.read_text() + f"\n\nimport {upper}  # an upward import\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and upper.split(".")[0] in result.stdout
