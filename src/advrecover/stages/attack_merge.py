"""Stage ``attack_merge``: assemble the K shards of one (pool, attack) into one file.

Copies the shards in order, batch by batch, into a fresh file (so its layout does not depend
on how the shards were produced or resumed), after checking that they are complete and come
from one configuration. Writes the set's summary metrics (success rate, accuracies, norms, and
how many images sit within ``NEAR_BOUNDARY`` of a decision boundary: their labels hang on
floating-point rounding, so a column made of them measures little).
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np

from ..data import adversarial as adv_format
from ..io import atomic_path, write_json

log = logging.getLogger(__name__)

# attributes that legitimately differ between the shards of one set
PER_SHARD = {"shard", "wall_time_s", "done_batches", "config_key"}
NEAR_BOUNDARY = 1e-3  # top-1 minus top-2 logit below this: the label is decided by rounding


def summary(f: h5py.File) -> dict:
    """The set's metrics: success rate, mean norms, the share of images near a boundary and, for
    a labelled set, the victim's accuracy on its clean and its adversarial images."""
    c = {name: f[name][...] for name in ("success", "label", "pred_clean", "pred_adv", "l2", "linf", "margin")}
    n = len(c["label"])

    def mean(values) -> float:
        return round(float(np.mean(values)) if n else 0.0, 6)

    metrics = {"n": n, "success_rate": mean(c["success"]), "mean_l2": mean(c["l2"]), "mean_linf": mean(c["linf"]),
               "near_boundary_share": mean(c["margin"] < NEAR_BOUNDARY),
               "median_margin": round(float(np.median(c["margin"])) if n else 0.0, 6)}
    if n and (c["label"] >= 0).all():
        metrics["clean_accuracy"] = mean(c["pred_clean"] == c["label"])
        metrics["adversarial_accuracy"] = mean(c["pred_adv"] == c["label"])
    return metrics


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    return {"shard_paths": [Path(args.shards) / f"shard-{k}.h5" for k in range(len(p["attack"]["shards"]))]}


def run(*, shard_paths: list[str | Path], out_path: str | Path, metrics_path: str | Path) -> dict:
    """Merge ``shard_paths`` (in shard order) into ``out_path``; write summary metrics."""
    shards = [Path(p) for p in shard_paths]
    for p in shards:
        if not p.is_file():
            raise FileNotFoundError(f"shard missing: {p} (run its attack stage)")
    metas = [adv_format.read_attrs(p) for p in shards]
    common = {k: v for k, v in metas[0].items() if k not in PER_SHARD}
    for p, meta in zip(shards, metas):
        other = {k: v for k, v in meta.items() if k not in PER_SHARD}
        if other != common:
            diff = sorted(k for k in set(other) | set(common) if other.get(k) != common.get(k))
            raise ValueError(f"{p} does not belong with {shards[0]}: attributes {diff} differ")
        if meta.get("n_shards") != len(shards):
            raise ValueError(f"{p} is one of {meta.get('n_shards')} shards, but {len(shards)} were given")
    with h5py.File(shards[0], "r") as f:
        size, dtype, chunk = f["images"].shape[1], f["images"].dtype, f["images"].chunks[0]
    counts = []
    for p in shards:
        with h5py.File(p, "r") as f:
            counts.append(f["images"].shape[0])
    n = sum(counts)
    dtype_name = next(k for k, v in adv_format.DTYPES.items() if np.dtype(v) == dtype)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        adv_format.create(out, n, size, dtype_name, chunk, metas[0]["compression"])
        row = 0
        for p, count in zip(shards, counts):
            with h5py.File(p, "r") as f:
                for s in range(0, count, chunk):
                    e = min(s + chunk, count)
                    for name in ("images", *adv_format.COLUMNS):
                        out[name][row + s:row + e] = f[name][s:e]
            row += count
        for key, value in common.items():
            out.attrs[key] = value
        out.attrs["n_shards"] = len(shards)
        out.attrs["wall_time_s"] = float(sum(m["wall_time_s"] for m in metas))
        metrics = summary(out)
    write_json(metrics_path, metrics)
    log.info("merged %d shard(s) into %s: %s", len(shards), out_path, metrics)
    return metrics


def workload(p: dict, job) -> list:
    """No network runs here (file work only): nothing for benchmarks/scale.py to cost."""
    return []
