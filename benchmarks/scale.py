"""What every job of the DAG costs at a params file's sizes, before a cluster allocation is spent on it.

For each job of dvc.yaml rendered with the params (default configs/paper.yaml), each load its stage
declares (``workload`` in src/advrecover/stages/<stage>.py, see advrecover.scale): the networks'
parameters, FLOPs per image of one step (forward and backward, torch.utils.flop_counter), the
estimated peak memory of one step at the params' batch size, the image-steps of the whole job, its
FLOPs and its GPU-hours at a stated sustained throughput (default 40% of an H100 SXM's dense peak:
989 TFLOP/s bf16 for bfloat16 steps, 67 TFLOP/s fp32 otherwise, which is pessimistic where cuDNN
uses TF32 for fp32 convolutions). Shards of one attack are summed into one row. Prints one table
and the whole DAG's FLOPs and GPU-hours; warns of a job longer than the runtime the SLURM profile
(slurm/config.yaml) gives its rule, and exits 1 when a job's memory exceeds --limit-gb.

How memory is obtained: counted on CPU at a small batch (--batch) and scaled linearly to the params'
batch (advrecover.scale.count: weights, gradients, optimiser slots, saved activations). With
--measure every load also runs at its full batch on the params' device (CUDA when present): the
seconds per step replace the throughput estimate, and on CUDA the allocator's peak replaces the
memory estimate.

    python benchmarks/scale.py [--params configs/paper.yaml] [--limit-gb 80] [--measure] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import shlex
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml

from advrecover import cli, dag, scale
from advrecover import params as params_mod
from advrecover.device import resolve

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9


def jobs(p: dict, root: Path):
    """(stage, module, Job) for every instance of every stage, in dvc.yaml's order (upstream first)."""
    parser = cli.parser()
    for stage in dag.load_stages(ROOT / "dvc.yaml", p):
        keys = list(stage.wildcards)
        for combo in itertools.product(*stage.wildcards.values()):
            tokens = shlex.split(stage.command(dict(zip(keys, combo))))
            args = parser.parse_args(tokens[1:])
            yield stage.name, tokens[1], scale.Job(stage.name, args, root), dict(zip(keys, combo))


def workload(module: str, p: dict, job: scale.Job) -> list[scale.Load]:
    """The loads of one job; a stage module without ``workload`` is an error naming it."""
    mod = importlib.import_module(f"advrecover.stages.{module}")
    if not hasattr(mod, "workload"):
        raise SystemExit(f"stage {job.stage}: advrecover/stages/{module}.py defines no workload(p, job): "
                         f"declare what its job runs (advrecover.scale)")
    return mod.workload(p, job)


def row(name: str, item: dict, load: scale.Load, f: scale.Figures, throughput: dict, device) -> dict:
    flops = f.flops_per_image * load.images
    if device is not None:
        seconds, peak = scale.measure(load, device)
        hours, peak = seconds * load.images / load.batch / 3600, peak if peak is not None else f.peak_bytes
    else:
        hours, peak = flops / throughput[load.precision] / 3600, f.peak_bytes
    return {"job": "@".join([name, *[v for k, v in item.items() if k != "shard"]]),
            "instance": "@".join([name, *item.values()]), "load": load.name,
            "precision": load.precision, "batch": load.batch, "params_M": f.parameters / 1e6,
            "GFLOP_per_image": f.flops_per_image / 1e9, "images": load.images, "PFLOP": flops / 1e15,
            "peak_GB": peak / GB, "GPU_hours": hours}


def table(p: dict, batch: int, throughput: dict, device) -> tuple[pd.DataFrame, pd.Series]:
    """One row per job and load (shards of an attack summed), and the GPU-hours of each SLURM job."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, module, job, item in jobs(p, Path(tmp)):
            for load in workload(module, p, job):
                rows.append(row(name, item, load, scale.count(load, batch), throughput, device))
            print(f"costed {rows[-1]['job'] if rows else name}", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    per_job = frame.groupby(["job", "load"], sort=False).agg(
        {"precision": "first", "batch": "first", "params_M": "first", "GFLOP_per_image": "first", "images": "sum",
         "PFLOP": "sum", "peak_GB": "max", "GPU_hours": "sum"}).reset_index()
    return per_job, frame.groupby("instance", sort=False).GPU_hours.sum()


def long_jobs(per_instance: pd.Series) -> list[tuple[str, float, float]]:
    """SLURM jobs (one per stage instance, shard included) whose estimated GPU-hours exceed the runtime
    slurm/config.yaml gives their rule (a warning: the estimate assumes the stated throughput)."""
    profile = yaml.safe_load((ROOT / "slurm/config.yaml").read_text())
    default = profile["default-resources"]["runtime"]
    out = []
    for job, hours in per_instance.items():
        minutes = profile.get("set-resources", {}).get(job.split("@")[0], {}).get("runtime", default)
        if hours * 60 > minutes:
            out.append((job, hours, minutes / 60))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "configs/paper.yaml"))
    ap.add_argument("--limit-gb", type=float, default=80.0, help="memory of one GPU (default 80)")
    ap.add_argument("--efficiency", type=float, default=0.4, help="sustained share of the peak (default 0.4)")
    ap.add_argument("--peak-bf16", type=float, default=989.0, help="dense bf16 TFLOP/s (H100 SXM: 989)")
    ap.add_argument("--peak-fp32", type=float, default=67.0, help="fp32 TFLOP/s (H100 SXM: 67)")
    ap.add_argument("--batch", type=int, default=2, help="batch the CPU count runs at (default 2)")
    ap.add_argument("--measure", action="store_true", help="time every load at its full batch on the device")
    ap.add_argument("--csv", help="also write the table here")
    args = ap.parse_args(argv)
    p = params_mod.read(args.params)
    throughput = {"float32": args.peak_fp32 * 1e12 * args.efficiency, "bfloat16": args.peak_bf16 * 1e12 * args.efficiency}
    torch.manual_seed(0)
    frame, per_instance = table(p, args.batch, throughput, resolve(p["device"]) if args.measure else None)
    with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 48):
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    how = "measured step times" if args.measure else \
        f"{args.efficiency:.0%} of {args.peak_bf16:g} (bf16) / {args.peak_fp32:g} (fp32) TFLOP/s"
    print(f"\nwhole DAG ({args.params}): {frame.PFLOP.sum() / 1e3:.3g} EFLOP, {frame.GPU_hours.sum():.3g} GPU-hours "
          f"at {how}; largest job {frame.peak_GB.max():.3g} GB; longest job {per_instance.idxmax()} "
          f"{per_instance.max():.3g} GPU-hours")
    if args.csv:
        frame.to_csv(args.csv, index=False)
    for job, hours, limit in long_jobs(per_instance):
        print(f"LONGER than the SLURM profile's runtime: {job}: {hours:.3g} GPU-hours, runtime {limit:g} h "
              f"(slurm/config.yaml)", file=sys.stderr)
    over = frame[frame.peak_GB > args.limit_gb]
    for _, r in over.iterrows():
        print(f"OVER {args.limit_gb:g} GB: {r.job} / {r.load}: {r.peak_GB:.3g} GB at batch {r.batch}", file=sys.stderr)
    return 1 if len(over) else 0


if __name__ == "__main__":
    sys.exit(main())
