"""Stage ``attack_merge``: assemble the K shards of one (pool, attack) into one file.

Copies the shards in order, batch by batch, into a fresh file (so its layout does not depend
on how the shards were produced or resumed), after checking that they are complete and come
from one configuration. Writes the set's summary metrics (success rate, accuracies, norms).
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
        success, label = out["success"][...], out["label"][...]
        pred_clean, pred_adv = out["pred_clean"][...], out["pred_adv"][...]
        l2, linf = out["l2"][...], out["linf"][...]
    labelled = bool(n) and bool((label >= 0).all())
    metrics = {"n": int(n), "success_rate": round(float(success.mean()) if n else 0.0, 6),
               "mean_l2": round(float(l2.mean()) if n else 0.0, 6),
               "mean_linf": round(float(linf.mean()) if n else 0.0, 6)}
    if labelled:
        metrics["clean_accuracy"] = round(float((pred_clean == label).mean()), 6)
        metrics["adversarial_accuracy"] = round(float((pred_adv == label).mean()), 6)
    write_json(metrics_path, metrics)
    log.info("merged %d shard(s) into %s: %s", len(shards), out_path, metrics)
    return metrics
