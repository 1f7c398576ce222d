"""Cost of the test-time defences that iterate: the self-supervised reversal (Mao et al. 2021; Lawhon
and Ducrest: an optimisation per input) and diffusion purification (Nie et al. 2022: a reverse
diffusion chain per input). Each multiplies the inference cost, and an adaptive attack through the
whole iteration multiplies it again.

Prints, for each reversal and diffpure row of params.yaml and each setting (the reversal: repair
steps, the quick profile's and Mao et al.'s 40; diffpure: the row's t* and steps, and Nie et al.'s
t* = 100 with the 100-step DDPM chain, the reverse steps with and without gradient checkpointing):
seconds per 100 images of the defended answer (the defence and the victim, as the evaluation runs
it), of one attack gradient through BPDA and through the full route (the adaptive stage's two
routes), and the peak resident memory of a process doing the full one.

Needs the outputs of `make run` (models/victim.pt, models/ssl/*.pt, models/diffusion/diffusion.pt,
data/pools/test.h5).

    python benchmarks/test_time.py [--n 100] [--steps 5 40] [--diffpure 100,100]
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


def measure(row: str, setting: dict, n: int) -> dict:
    """Seconds per 100 images of the answer and of one gradient per route, and the peak RSS (MiB)."""
    use_allocated_cpus()
    params = params_mod.load(ROOT / "params.yaml")
    device = resolve(params["device"])
    cfg = section(victims.VictimConfig, params["victim"])
    victim = inference.prepare(victims.load(ROOT / "models/victim.pt", cfg), device)
    defence = defences.build({**params["evaluate"]["defences"][row], **setting}, ROOT / "models", None,
                             victim).to(device)
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


def settings(spec: dict, args) -> list[dict]:
    """The settings measured for one row: its method's knobs at the quick profile's and the papers' values."""
    if spec["method"] == "reversal":
        return [{"steps": s} for s in args.steps]
    chains = [(spec["t_star"], spec["steps"])] + [tuple(map(int, c.split(","))) for c in args.diffpure]
    return [{"t_star": t, "steps": s, "checkpointed": c} for t, s in chains for c in (True, False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="images (one batch)")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 40], help="the reversal's repair steps")
    ap.add_argument("--diffpure", nargs="*", default=["100,100"], help="diffpure's t_star,steps besides the row's")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # row setting-json: measure in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], json.loads(args.one[1]), args.n)))
        return
    rows = {k: v for k, v in params_mod.load(ROOT / "params.yaml")["evaluate"]["defences"].items()
            if v["method"] in ("reversal", "diffpure")}
    print(f"{args.n} images, one batch; seconds per 100 images; peak RSS of a process doing all three")
    print("| row | setting | answer s | gradient via bpda s | gradient via full s | peak MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row, spec in rows.items():
        for setting in settings(spec, args):  # one process each: the peak memory is that setting's
            out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--one", row, json.dumps(setting)],
                                 capture_output=True, text=True, check=True).stdout
            f = json.loads(out.strip().splitlines()[-1])
            shown = " ".join(f"{k} {v}" for k, v in setting.items())
            print(f"| {row} | {shown} | {f['answer']:.2f} | {f['bpda']:.2f} | {f['full']:.2f} | {f['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
