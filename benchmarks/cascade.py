"""What the adaptive stage's cascade saves: each defence's adaptive shard run twice on the same images,
with ``adaptive.cascade`` on and off, through the stage's own ``run``.

Prints, per defence: forward passes per attacked image (the stage's own count) and wall seconds in
each mode, the saving, and whether the per-image worst case of the attacks (transfer, routes,
Square, detection-aware PGD) agrees (with batches of more than one image the random starts differ
between the modes: see "The cascade" in docs/concepts.md, so a few images may differ).

Needs the outputs of `make run` (models/, data/pools/, data/adversarial/).

    python benchmarks/cascade.py [--defences none cae_aae] [--n 64] [--batch-size 1] [--csv out.csv]

With ``--batch-size 1`` every attack sees the same input in both modes, so on a deterministic
defence the worst case must agree on every image (tests/test_benchmarks.py runs it so on the
tiny configuration's defences).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from advrecover import params as params_mod
from advrecover.adaptive import outcomes as O
from advrecover.device import resolve, use_allocated_cpus
from advrecover.stages import adaptive

ROOT = Path(__file__).resolve().parents[1]
TEXT = {"model": str, "threat": str, "kind": str, "route": str, "attack": str}


def measure(p: dict, defence: str, cascade: bool, out: Path, **budget) -> tuple[float, float, np.ndarray]:
    """Forward passes per image, wall seconds and the per-image worst case of one unsharded run
    (``budget``: ``n``, ``batch_size``, ``checks_n`` replacing the params' where given)."""
    job = adaptive.from_params(p, SimpleNamespace(defence=defence, shard=0))
    cfg = job["cfg"]
    if budget.get("checks_n"):
        cfg = dataclasses.replace(cfg, checks=dataclasses.replace(cfg.checks, n=budget["checks_n"]))
    cfg = dataclasses.replace(cfg, shards=(0,), cascade=cascade,
                              **{k: v for k, v in budget.items() if v and k in ("n", "batch_size")})
    start = time.perf_counter()
    totals = adaptive.run(**{**job, "cfg": cfg}, pool_path=ROOT / f"data/pools/{p['evaluate']['pool']}.h5",
                          adversarial_dir=ROOT / f"data/adversarial/{p['evaluate']['pool']}",
                          victim_path=ROOT / "models/victim.pt", models_dir=ROOT / "models", device=resolve(p["device"]),
                          out_path=out / f"{defence}-{cascade}.csv.gz", totals_path=out / f"{defence}-{cascade}.json")
    seconds = time.perf_counter() - start
    records = pd.read_csv(out / f"{defence}-{cascade}.csv.gz", keep_default_na=False, dtype=TEXT)
    worst = []
    for _, rec in records.groupby(["model", "threat"], sort=False):
        runs = O.from_records(rec)
        worst.append(O.all_of([r for r in runs if r.kind not in ("clean", "check")], runs[0]))
    forwards = sum(t["forwards"] for m in totals["models"].values() for t in m["threats"].values())
    return forwards / max(totals["n"], 1), seconds, np.concatenate(worst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--defences", nargs="*", help="keys of evaluate.defences (default: all)")
    ap.add_argument("--n", type=int, help="attacked images (default: each defence's adaptive budget)")
    ap.add_argument("--batch-size", type=int, help="images per batch (default: adaptive.batch_size)")
    ap.add_argument("--checks-n", type=int, help="images of the sanity checks (default: adaptive.checks.n)")
    ap.add_argument("--csv", help="also write the table here")
    args = ap.parse_args()
    use_allocated_cpus()
    p, rows = params_mod.load(ROOT / "params.yaml"), []
    budget = {"n": args.n, "batch_size": args.batch_size, "checks_n": args.checks_n}
    print("| defence | forwards/image full | cascade | saving | seconds full | cascade | worst case agrees |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for defence in args.defences or list(p["evaluate"]["defences"]):
            full, full_s, full_worst = measure(p, defence, False, Path(tmp), **budget)
            cut, cut_s, cut_worst = measure(p, defence, True, Path(tmp), **budget)
            rows.append({"defence": defence, "forwards_full": full, "forwards_cascade": cut,
                         "saving": 1 - cut / max(full, 1e-9), "seconds_full": full_s, "seconds_cascade": cut_s,
                         "agree": int((full_worst == cut_worst).sum()), "images": len(full_worst)})
            print(f"| {defence} | {full:,.0f} | {cut:,.0f} | {rows[-1]['saving']:.0%} | {full_s:.1f} | {cut_s:.1f} | "
                  f"{rows[-1]['agree']}/{len(full_worst)} |", flush=True)
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
