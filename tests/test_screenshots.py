"""`make screenshots` (tools/screenshots.py) builds its throwaway site and writes real PNGs."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MAX_BYTES = 300_000


@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                    reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver")
def test_the_command_writes_a_phone_wide_png_of_one_page(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "VIGIE_CACHE_URL",
                                                             "VIGIE_DATA_DIR", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "screenshots.py"), "--out", str(tmp_path / "shots"),
                             "--page", "not-found", "--width", "phone"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    png = (tmp_path / "shots" / "not-found-phone.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk: the viewport, not the whole page
    assert (width, height) == (390, 844)
    assert 5_000 < len(png) <= MAX_BYTES


def test_the_committed_screenshots_are_the_documented_ones_and_small():
    shots = sorted((ROOT / "docs" / "screenshots").glob("*.png"))
    pages = ["status", "incident", "incident-fr", "oncall", "api-docs", "not-found", "unacknowledged"]
    assert [p.name for p in shots] == sorted(f"{page}-{width}.png" for page in pages for width in ("desktop", "phone"))
    assert all(p.stat().st_size <= MAX_BYTES for p in shots)
    index = (ROOT / "docs" / "screenshots.md").read_text()
    assert all(f"(screenshots/{p.name})" in index for p in shots)
