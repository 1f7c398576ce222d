"""Cost of the self-supervised reversal (Mao et al. 2021; Lawhon and Ducrest): test-time optimisation
multiplies the inference cost, and an adaptive attack through the unrolled repair multiplies it again.

Prints, for each reversal row of params.yaml and each number of repair steps (the quick profile's and
Mao et al.'s 40): seconds per 100 images of the defended answer (the repair and the victim, as the
evaluation runs it), of one attack gradient through BPDA and through the unrolled repair (the
adaptive stage's two routes), and the peak resident memory of a process doing the unrolled one.

Needs the outputs of `make run` (models/victim.pt, models/ssl/*.pt, data/pools/test.h5).

    python benchmarks/reversal.py [--n 100] [--steps 5 40]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from advrecover import defences, inference
from advrecover import params as params_mod
from advrecover.config import section
from advrecover.adaptive.routes import Defended
from advrecover.data.pools import read_pool
from advrecover.data.tensors import to_tensor
from advrecover.device import resolve, use_allocated_cpus
from advrecover.models import victim as victims

ROOT = Path(__file__).resolve().parents[1]


def measure(row: str, steps: int, n: int) -> dict:
    """Seconds per 100 images of the answer and of one gradient per route, and the peak RSS (MiB)."""
    use_allocated_cpus()
    params = params_mod.load(ROOT / "params.yaml")
    device = resolve(params["device"])
    cfg = section(victims.VictimConfig, params["victim"])
    victim = inference.prepare(victims.load(ROOT / "models/victim.pt", cfg), device)
    spec = {**params["evaluate"]["defences"][row], "steps": steps}
    defence = defences.build(spec, ROOT / "models", None, victim).to(device)
    x = to_tensor(read_pool(ROOT / "data/pools/test.h5").images[:n]).to(device)
    y = inference.logits(victim, x).argmax(1)
    figures = {}
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
        inference.logits(victim, defence.recover(x))
    figures["answer"] = 100 * (time.perf_counter() - start) / n
    for route in ("bpda", "full"):
        xg = x.clone().requires_grad_(True)
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(Defended(victim, defence, route)(xg), y)
        torch.autograd.grad(loss, xg)
        figures[route] = 100 * (time.perf_counter() - start) / n
    figures["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="images (one batch)")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 40])
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # row steps: measure in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.n)))
        return
    rows = [k for k, v in params_mod.load(ROOT / "params.yaml")["evaluate"]["defences"].items()
            if v["method"] == "reversal"]
    print(f"{args.n} images, one batch; seconds per 100 images; peak RSS of a process doing all three")
    print("| row | steps | answer s | gradient via bpda s | gradient via full (unrolled) s | peak MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        for steps in args.steps:  # one process each: the peak memory is that configuration's
            out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--one", row, str(steps)],
                                 capture_output=True, text=True, check=True).stdout
            f = json.loads(out.strip().splitlines()[-1])
            print(f"| {row} | {steps} | {f['answer']:.2f} | {f['bpda']:.2f} | {f['full']:.2f} | {f['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
