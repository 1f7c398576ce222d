"""Attack throughput, success and norms on the built-in victim and test pool.

Prints, for every attack instance of params.yaml:
  - images per second of the ``attack`` stage (HDF5 in and out, victim evaluations included)
    and of the attack call alone, success rate, mean L2 and Linf;
  - for DeepFool and JSMA, our batched implementation and torchattacks' side by side on the
    same images (torchattacks runs one image at a time, so it gets fewer images);
  - for FGSM, PGD, BIM and CW, the ratio of throughput to the compute bound
    (steps x the time of one batched forward+backward pass of the victim), and to the stage's
    floor: the bound plus the one forward pass on the stored images that pred_adv needs (the
    clean predictions come free from the attack's first pass where it starts on the clean
    images), which is what a one-step attack such as FGSM can reach at best. Every stage run
    and bare call is paired with a bound timed right before it (this shared machine's speed
    drifts by a third within seconds, so a bound timed once, or minutes apart, decides the ratio
    more than the stage does); rates and ratios are medians over at least ``--repeats`` pairs,
    more for quick attacks, until ``--seconds`` of stage time per attack;
  - peak resident memory of the attack stage on pools of N and 4N images.

Needs the outputs of `make run` (models/victim.pt, data/pools/test.h5).

    python benchmarks/attacks.py [--n 256] [--reference-n 32]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from advrecover import attacks
from advrecover import params as params_mod
from advrecover.config import section
from advrecover.data.pools import read_pool, write_pool
from advrecover.device import resolve, use_allocated_cpus
from advrecover.models import victim as victims
from advrecover.stages import attack as attack_stage
from advrecover.data.tensors import to_tensor

ROOT = Path(__file__).resolve().parents[1]
BOUNDED = {"fgsm", "pgd", "bim", "cw"}  # methods with a compute bound: steps (FGSM: one) x forward+backward


def per_pass(step, passes: int) -> float:
    """Seconds per call of ``step`` over ``passes`` back-to-back calls (after one warm-up call)."""
    step()
    start = time.perf_counter()
    for _ in range(passes):
        step()
    return (time.perf_counter() - start) / passes


def unit_times(model, x, y, steps: int) -> tuple[float, float]:
    """Seconds per image of the compute bound, ``steps`` batched forward+backward passes to the
    input (timed over at least 10), and of one batched forward pass without gradients."""
    def forward_backward():
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(model(xr), y), xr)

    def forward():
        with torch.inference_mode():
            model(x)

    return steps * per_pass(forward_backward, max(steps, 10)) / len(x), per_pass(forward, 10) / len(x)


def evaluate(model, x, y, adv, seconds, n) -> dict:
    with torch.no_grad():
        pred = model(adv).argmax(1)
    d = (adv - x).flatten(1)
    return {"img_s": n / seconds, "success": (pred != y).float().mean().item(),
            "l2": d.norm(dim=1).mean().item(), "linf": d.abs().amax(1).mean().item()}


def timed(attack, x, y):
    torch.manual_seed(0)
    start = time.perf_counter()
    adv = attack(x, y)
    return adv, time.perf_counter() - start


def stage_throughput(name, spec, pool_path, victim, p, device, tmp) -> float:
    """Images per second of one run of the attack stage (its own wall-time record)."""
    a = p["attack"]
    stage = attack_stage.run(name=name, spec=spec, pool_name="test", pool_path=pool_path, victim_path=victim,
                             victim_cfg=section(victims.VictimConfig, p["victim"]), shard=0, n_shards=1, batch_size=a["batch_size"], dtype=a["dtype"],
                             seed=0, device=device, out_path=tmp / f"{name}.h5", compression=a["compression"],
                             progress=False)
    return stage["n"] / stage["wall_time_s"]


def subset_pool(pool, n: int, path: Path) -> Path:
    idx = np.resize(np.arange(len(pool.images)), n)
    write_pool(path, pool.images[idx], pool.labels[idx], idx, {**pool.attrs, "class_names": pool.class_names})
    return path


def peak_memory(pool_path: Path, victim: Path, params: Path, work: Path) -> float:
    """Peak RSS (MiB) of one attack stage process (FGSM) on ``pool_path``."""
    code = ("import resource, sys, torch; from advrecover.stages import attack; "
            "from advrecover.config import section; from advrecover.models.victim import VictimConfig; "
            "from advrecover.params import read; p = read(sys.argv[1]); "
            "attack.run(name='fgsm', spec={'method': 'fgsm', 'eps': 8 / 255}, pool_name='test', pool_path=sys.argv[2], "
            "victim_path=sys.argv[3], victim_cfg=section(VictimConfig, p['victim']), shard=0, n_shards=1, "
            "batch_size=p['attack']['batch_size'], dtype='float32', seed=0, device=torch.device('cpu'), "
            "out_path=sys.argv[4], progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, str(params), str(pool_path), str(victim), str(work / "m.h5")],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--victim", default=str(ROOT / "models/victim.pt"))
    ap.add_argument("--pool", default=str(ROOT / "data/pools/test.h5"))
    ap.add_argument("--n", type=int, default=256, help="images per attack (ours)")
    ap.add_argument("--reference-n", type=int, default=32, help="images for torchattacks' DeepFool and JSMA")
    ap.add_argument("--memory-n", type=int, default=512, help="N for the N vs 4N memory comparison")
    ap.add_argument("--repeats", type=int, default=3, help="least stage runs per attack (medians are printed)")
    ap.add_argument("--seconds", type=float, default=20.0, help="more stage runs until this much stage time")
    ap.add_argument("--max-repeats", type=int, default=15, help="most stage runs per attack")
    ap.add_argument("--attacks", help="comma-separated instances (default: attack.run of the params)")
    ap.add_argument("--parts", default="throughput,reference,memory", help="comma-separated parts to run")
    args = ap.parse_args()
    if not Path(args.victim).is_file() or not Path(args.pool).is_file():
        sys.exit("run `make run` first: the benchmark needs models/victim.pt and data/pools/test.h5")
    p = params_mod.read(args.params)
    use_allocated_cpus()
    device = resolve(p["device"])
    model = victims.load(args.victim, section(victims.VictimConfig, p["victim"])).to(device, memory_format=torch.channels_last)
    pool = read_pool(args.pool)
    idx = np.resize(np.arange(len(pool.images)), args.n)  # the pool repeated up to n, as in subset_pool
    x = to_tensor(pool.images[idx]).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(pool.labels[idx]).to(device)
    bs = p["attack"]["batch_size"]
    t_fb, t_f = unit_times(model, x[:bs], y[:bs], 1)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {bs}, "
          f"forward+backward {1 / t_fb:.0f} img/s, forward {1 / t_f:.0f} img/s, {args.n} images\n")
    print(f"{'attack':10s} {'runs':>4s} {'stage img/s':>11s} {'call img/s':>10s} {'success':>8s} {'L2':>7s} "
          f"{'Linf':>7s} {'stage/bound':>11s} {'call/bound':>10s} {'stage/floor':>11s}")
    instances = p["attack"]["instances"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sub = subset_pool(pool, args.n, tmp / "pool.h5")
        names = args.attacks.split(",") if args.attacks else p["attack"]["run"]
        for name in names if "throughput" in args.parts else []:
            spec = instances[name]
            steps = spec.get("steps", 1) if spec["method"] in BOUNDED else None
            runs = []  # per repeat: stage img/s, call img/s, and the ratios against units timed right before
            while len(runs) < args.max_repeats and (len(runs) < args.repeats
                                                     or sum(args.n / r[0] for r in runs) < args.seconds):
                bound, forward = unit_times(model, x[:bs], y[:bs], steps) if steps else (0.0, 0.0)
                rate = stage_throughput(name, spec, sub, args.victim, p, device, tmp)
                adv, seconds = timed(attacks.build(spec, model), x, y)
                call = args.n / seconds
                runs.append((rate, call, rate * bound, call * bound, rate * (bound + forward)))
            med = [statistics.median(r[i] for r in runs) for i in range(5)]
            r = evaluate(model, x, y, adv, seconds, args.n)
            ratios = f"{med[2]:11.2f} {med[3]:10.2f} {med[4]:11.2f}" if steps else ""
            print(f"{name:10s} {len(runs):4d} {med[0]:11.1f} {med[1]:10.1f} {r['success']:8.3f} {r['l2']:7.3f} "
                  f"{r['linf']:7.4f} {ratios}")

        print("\nbatched vs torchattacks (same images; success = victim's prediction on the returned images)")
        m = args.reference_n
        xs, ys = x[:m], y[:m]
        for name in ("deepfool", "jsma") if "reference" in args.parts else []:
            spec = instances[name]
            reference = attacks.build(dict(spec, impl="torchattacks"), model)
            ours_adv, ours_s = timed(attacks.build(spec, model), x, y)
            ours_all = evaluate(model, x, y, ours_adv, ours_s, args.n)
            ours_same = evaluate(model, xs, ys, ours_adv[:m], ours_s, m)
            ref_adv, ref_s = timed(reference, xs, ys)
            ref = evaluate(model, xs, ys, ref_adv, ref_s, m)
            print(f"{name:10s} ours {ours_all['img_s']:8.1f} img/s (success {ours_all['success']:.3f} on {args.n}, "
                  f"{ours_same['success']:.3f} on the first {m})  torchattacks {ref['img_s']:6.2f} img/s "
                  f"(success {ref['success']:.3f} on {m})  speed-up {ours_all['img_s'] / ref['img_s']:.1f}x  "
                  f"L2 {ours_same['l2']:.3f} vs {ref['l2']:.3f}")

        print("\npeak memory of the attack stage (FGSM)")
        for n in (args.memory_n, 4 * args.memory_n) if "memory" in args.parts else []:
            mib = peak_memory(subset_pool(pool, n, tmp / f"pool{n}.h5"), Path(args.victim), Path(args.params), tmp)
            print(f"  {n:6d} images: {mib:7.1f} MiB")


if __name__ == "__main__":
    main()
