"""Where the time goes in a py-spy profile (`make bench BENCH_ARGS="--profile DIR"`): the functions
with the most samples on the stack (inclusive) and at the top of it (self), by share of all samples.

    .venv/bin/python bench/profile_summary.py DIR/engine-threads-32-sacramento.txt [--top 25] [--match vigie]
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frames_of(stack: str) -> list[str]:
    out = []
    for frame in stack.split(";"):
        match = FRAME.match(frame.strip())
        if not match:
            out.append(frame.strip())
            continue
        path = match.group("file")
        for marker in ("site-packages/", "lib/python3.11/", f"{ROOT}/"):
            if marker in path:
                path = path.split(marker, 1)[1]
        out.append(f"{match.group('name')} ({path})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only functions whose file contains this (e.g. probes/ or django/db)")
    args = parser.parse_args()
    inclusive, own, total = Counter(), Counter(), 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = frames_of(stack)
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    print(f"{total} samples in {args.profile.name}")
    for title, counter in (("inclusive (on the stack)", inclusive), ("self (top of the stack)", own)):
        print(f"\n{title}")
        shown = 0
        for frame, n in counter.most_common():
            if args.match and args.match not in frame:
                continue
            print(f"  {100 * n / total:5.1f} %  {frame}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
