"""What the fault tests measure, for docs/operations.md: printed (see them with `pytest -s`) and
appended to test-artifacts/fault-figures.txt. Never asserted here: the tests assert their bounds."""
from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "test-artifacts" / "fault-figures.txt"


def figure(what: str, seconds: float) -> None:
    line = f"{what}: {seconds:.1f} s"
    print(f"FIGURE {line}", flush=True)
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("a") as out:
        out.write(line + "\n")
