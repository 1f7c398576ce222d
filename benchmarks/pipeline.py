"""Wall time of the foundation stages (`sample`, `victim`) on the built-in data.

Runs the real commands of dvc.yaml, with the repository's params.yaml, in a scratch
directory, and prints one line per stage plus the total (target: under 2 minutes together
on 2 CPU cores).

    python benchmarks/pipeline.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "sample": "advrecover sample --params params.yaml --out data/pools --metrics metrics/sample.json --quiet",
    "victim": ("advrecover victim --params params.yaml --pools data/pools --model models/victim.pt "
               "--metrics metrics/victim.json --history metrics/victim_train.csv --quiet"),
}


def write_params(source: Path, dest: Path) -> None:
    """``source`` at ``dest``, the victim's local files made absolute (relative to ``source``'s directory,
    where the pipeline runs), since the stages run in another directory here."""
    import yaml

    p = yaml.safe_load(source.read_text())
    for key in ("checkpoint", "torchvision_weights", "imagenet_classes"):
        if p["victim"].get(key) and not Path(p["victim"][key]).is_absolute():
            p["victim"][key] = str((source.parent / p["victim"][key]).resolve())
    dest.write_text(yaml.safe_dump(p, sort_keys=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args()
    print(f"cpus: {len(os.sched_getaffinity(0))}, cuda: {torch.cuda.is_available()}, torch {torch.__version__}")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_params(Path(args.params), Path(tmp) / "params.yaml")
        for stage, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd.split(), cwd=tmp, check=True, stderr=subprocess.DEVNULL)
            times[stage] = time.perf_counter() - start
            print(f"{stage:8s} {times[stage]:7.1f} s")
        accuracy = json.loads((Path(tmp) / "metrics/victim.json").read_text())["accuracy"]
    print(f"{'total':8s} {sum(times.values()):7.1f} s   (target < 120 s on 2 cores)")
    print("victim clean accuracy:", ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))


if __name__ == "__main__":
    main()
