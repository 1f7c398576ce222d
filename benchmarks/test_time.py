"""Cost of the test-time defences that iterate: the self-supervised reversal (Mao et al. 2021; Lawhon
and Ducrest: an optimisation per input) and diffusion purification (Nie et al. 2022: a reverse
diffusion chain per input). Each multiplies the inference cost, and an adaptive attack through the
whole iteration multiplies it again.

Prints, for each reversal and diffpure row of params.yaml and each setting, seconds per 100 images
of the defended answer (the defence and the victim, as the evaluation runs it), of one attack
gradient through BPDA and through the full route (the adaptive stage's two routes), and the peak
memory of a process doing the three (resident set on CPU, allocated GPU memory on CUDA). The
reversal: the repair steps given (the quick profile's and Mao et al.'s 40). diffpure: the row's t*
and steps on the trained model, and with ``--diffpure-paper`` the paper preset's setting
(configs/paper.yaml: t* = 100, the 100-step DDPM chain) on its pretrained architecture with fresh
weights (what it costs, not what it answers; Ho et al.'s CIFAR-10 U-Net where the pretrained
directory is absent), each with and without per-step gradient checkpointing. A setting that fails
(the unchecked chain out of memory, say) is reported as such.

Needs the outputs of `make run` (models/victim.pt, models/ssl/*.pt, models/diffusion/diffusion.pt,
data/pools/test.h5).

    python benchmarks/test_time.py [--n 100] [--steps 5 40] [--diffpure-paper]
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
from advrecover.defences.diffpure import DiffPure
from advrecover.device import resolve, use_allocated_cpus
from advrecover.models import diffusion
from advrecover.models import victim as victims

ROOT = Path(__file__).resolve().parents[1]


def paper_diffpure(checkpointed: bool = True) -> DiffPure:
    """The paper preset's diffpure row on its pretrained U-Net's architecture, fresh weights."""
    paper = params_mod.read(ROOT / "configs/paper.yaml")
    spec = section(diffusion.DiffusionSpec, paper["diffusion"]["model"])
    row = paper["evaluate"]["defences"]["diffpure"]
    unet = diffusion.pretrained_architecture(ROOT / paper["diffusion"]["pretrained"]).eval().requires_grad_(False)
    return DiffPure(unet, diffusion.schedule(spec), row["t_star"], row["steps"], checkpointed)


def build(row: str, setting: dict, params: dict, victim):
    """The defence of ``row`` with ``setting`` (``architecture: paper``: :func:`paper_diffpure`'s)."""
    setting = dict(setting)
    if setting.pop("architecture", None) == "paper":
        return paper_diffpure(setting["checkpointed"])
    return defences.build({**params["evaluate"]["defences"][row], **setting}, ROOT / "models", None, victim)


def timed(device, work) -> float:
    """Seconds of ``work()``, the GPU's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(row: str, setting: dict, n: int) -> dict:
    """Seconds per 100 images of the answer and of one gradient per route, and the peak memory (MiB)."""
    use_allocated_cpus()
    params = params_mod.load(ROOT / "params.yaml")
    device = resolve(params["device"])
    cfg = section(victims.VictimConfig, params["victim"])
    victim = inference.prepare(victims.load(ROOT / "models/victim.pt", cfg), device)
    defence = build(row, setting, params, victim).to(device)
    x = to_tensor(read_pool(ROOT / "data/pools/test.h5").images[:n]).to(device)
    y = inference.logits(victim, x).argmax(1)
    torch.manual_seed(0)
    with torch.no_grad():
        figures = {"answer": 100 * timed(device, lambda: inference.logits(victim, defence.recover(x))) / n}
    for route in ("bpda", "full"):
        def gradient(route=route):
            xg = x.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(Defended(victim, defence, route)(xg), y)
            torch.autograd.grad(loss, xg)
        figures[route] = 100 * timed(device, gradient) / n
    figures["peak_mib"] = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def settings(spec: dict, args) -> list[dict]:
    """The settings measured for one row: its method's knobs at the quick profile's and the papers' values."""
    if spec["method"] == "reversal":
        return [{"steps": s} for s in args.steps]
    chains = [{"t_star": spec["t_star"], "steps": spec["steps"]}]
    if args.diffpure_paper:
        chains.append({"architecture": "paper"})
    return [{**chain, "checkpointed": c} for chain in chains for c in (True, False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="images (one batch)")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 40], help="the reversal's repair steps")
    ap.add_argument("--diffpure-paper", action="store_true",
                    help="also diffpure at the paper preset's setting and architecture, fresh weights (a GPU's work)")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # row setting-json: measure in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], json.loads(args.one[1]), args.n)))
        return
    rows = {k: v for k, v in params_mod.load(ROOT / "params.yaml")["evaluate"]["defences"].items()
            if v["method"] in ("reversal", "diffpure")}
    device = resolve(params_mod.load(ROOT / "params.yaml")["device"])
    print(f"{args.n} images, one batch, on {device}; seconds per 100 images; peak memory of a process doing all three")
    print("| row | setting | answer s | gradient via bpda s | gradient via full s | peak MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row, spec in rows.items():
        for setting in settings(spec, args):  # one process each: the peak memory is that setting's
            res = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--one", row, json.dumps(setting)],
                                 capture_output=True, text=True)
            shown = " ".join(f"{k} {v}" for k, v in setting.items())
            if res.returncode:  # e.g. the chain without checkpointing out of memory: say so, measure the rest
                why = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1][:120]
                print(f"| {row} | {shown} | failed: {why} | | | |", flush=True)
                continue
            f = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"| {row} | {shown} | {f['answer']:.2f} | {f['bpda']:.2f} | {f['full']:.2f} | {f['peak_mib']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
