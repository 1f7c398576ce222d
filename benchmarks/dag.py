"""How long the runners take to decide that nothing needs to run, on a complete workspace.

Times `snakemake -n` and `dvc status` (best and median of --repeats runs each). Run it after
`make run` and `make handoff` (so that dvc.lock records the outputs).

    python benchmarks/dag.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return seconds, res.stdout + res.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    for cmd, idle in ((["snakemake", "-n"], "Nothing to be done"), (["dvc", "status"], "up to date")):
        runs = [timed(cmd) for _ in range(args.repeats)]
        if idle not in runs[-1][1]:
            print(f"note: {' '.join(cmd)} did not report a complete workspace ({idle!r} missing)")
        seconds = [s for s, _ in runs]
        print(f"{' '.join(cmd):14s} best {min(seconds):5.2f} s   median {statistics.median(seconds):5.2f} s")


if __name__ == "__main__":
    main()
