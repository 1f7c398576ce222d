"""Stage ``attack``: one shard of one attack instance on one pool, into HDF5.

A pool of N images is cut into batches of ``batch_size``; shard k of K takes the k-th of K
contiguous runs of batches, so every batch (its images and its seed) is the same however the
pool is sharded, and merged shards equal an unsharded run. Batches stream from the pool file
to the output: memory does not grow with the pool.

The output is first written as ``<out>.partial`` (a name no reader takes for a result), with
the number of finished batches recorded after each batch; a killed job resumes from there
and the file is renamed to ``<out>`` only when complete. Every batch is seeded by
``(seed, batch index)``, so a resumed run produces the same data as an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from .. import attacks, inference, scale
from ..config import entry, section
from ..data import adversarial as adv_format
from ..data.tensors import to_tensor
from ..io import config_digest, sha256_file
from ..shards import shard_batches
from ..models import victim as victims

log = logging.getLogger(__name__)


def batch_seed(seed: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, batch]).generate_state(1)[0])


def versions() -> dict:
    import torchattacks

    from .. import __version__

    return {"advrecover": __version__, "torch": torch.__version__, "torchattacks": torchattacks.__version__,
            "h5py": h5py.__version__, "numpy": np.__version__}


class CleanLogits:
    """Forward hook on the victim that keeps the logits of a batch's first forward pass when it
    is on exactly the clean images: FGSM, BIM, DeepFool, JSMA and SSAH start there, so the
    stage reads the clean predictions off the attack instead of paying another forward pass."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.handle = model, model.register_forward_hook(self._hook)
        self.clean, self.logits, self.first = None, None, False

    def expect(self, x: torch.Tensor) -> None:
        self.clean, self.logits, self.first = x, None, True

    def _hook(self, module, inputs, output) -> None:
        if self.first:
            self.first = False
            x = inputs[0]
            if x.shape == self.clean.shape and torch.equal(x, self.clean):
                self.logits = output.detach()

    def predictions(self) -> torch.Tensor:
        """The victim's predictions on the expected clean batch: captured, or one forward pass."""
        if self.logits is None:
            with torch.no_grad():
                self.logits = inference.logits(self.model, self.clean)
        return self.logits.argmax(1)


def _open_partial(partial: Path, key: str, n_rows: int, size: int, dtype: str, chunk: int,
                  compression: str):
    """Open the partial output, resuming when it belongs to this exact configuration."""
    if partial.exists():
        try:
            f = h5py.File(partial, "a")
            if f.attrs.get("config_key") == key and "images" in f:
                done = int(f.attrs.get("done_batches", 0))
                log.info("resuming %s after %d finished batches", partial, done)
                return f, done
            f.close()
        except OSError as exc:  # killed mid-write: the partial file is not readable, start over
            log.warning("discarding unreadable partial output %s (%s)", partial, exc)
        partial.unlink()
    f = h5py.File(partial, "w")
    adv_format.create(f, n_rows, size, dtype, chunk, compression)
    f.attrs["config_key"] = key
    f.attrs["done_batches"] = 0
    f.attrs["wall_time_s"] = 0.0
    return f, 0


def attack_batch(attack, model: torch.nn.Module, clean_logits: CleanLogits, x: torch.Tensor, label: np.ndarray,
                 labelled: bool, dtype: str, device) -> dict:
    """Attack one batch ``x`` (seeded by the caller): the stored images and every column of the set
    format, predictions and norms computed on the stored (quantised) images."""
    clean_logits.expect(x)
    if labelled:
        y = torch.from_numpy(label).to(device)
        adv = attack(x, y).detach()
        pred_clean = clean_logits.predictions()
    else:  # the target is the victim's clean prediction, needed before the attack
        y = pred_clean = clean_logits.predictions()
        adv = attack(x, y).detach()
    stored = adv_format.quantize(adv.permute(0, 2, 3, 1).cpu().numpy(), dtype)
    adv_f = to_tensor(adv_format.dequantize(stored)).to(device)
    with torch.no_grad():
        logits = inference.logits(model, adv_f)
    pred_adv, top = logits.argmax(1), logits.topk(2, dim=1)  # argmax: the tie-break of every other prediction
    delta = (adv_f - x).flatten(1)
    return {"images": stored, "label": label, "pred_clean": pred_clean.cpu().numpy(),
            "pred_adv": pred_adv.cpu().numpy(), "success": (pred_adv != y).cpu().numpy(),
            "l2": delta.norm(dim=1).cpu().numpy(), "linf": delta.abs().amax(dim=1).cpu().numpy(),
            "margin": (top.values[:, 0] - top.values[:, 1]).cpu().numpy()}


def append(f: h5py.File, rows: slice, pool_index: np.ndarray, columns: dict, seconds: float) -> None:
    """Write one finished batch into the partial file and record it as done (then flush)."""
    f["images"][rows] = columns["images"]  # datasets in the order of the format: the same bytes as before
    f["pool_index"][rows] = pool_index
    for name in adv_format.COLUMNS:
        if name != "pool_index":
            f[name][rows] = columns[name]
    f.attrs["done_batches"] = int(f.attrs["done_batches"]) + 1
    f.attrs["wall_time_s"] = float(f.attrs["wall_time_s"]) + seconds
    f.flush()


def set_attributes(*, name: str, spec: dict, pool_name: str, pool_checksum: str, victim_checksum: str, seed: int,
                   dtype: str, compression: str, batch_size: int, shard: int, n_shards: int, labelled: bool) -> dict:
    """The attributes a finished set records (its provenance; the checksums are checked by readers)."""
    return {"attack": name, "method": spec["method"], "params": {k: v for k, v in spec.items() if k != "method"},
            "pool": pool_name, "pool_checksum": pool_checksum, "victim_checksum": victim_checksum, "seed": seed,
            "dtype": dtype, "compression": compression, "batch_size": batch_size, "shard": shard,
            "n_shards": n_shards, "target": "label" if labelled else "prediction", "versions": versions()}


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    a = p["attack"]
    return {"name": args.attack, "spec": entry(a["instances"], args.attack, "attack", "attack.instances"),
            "pool_name": args.pool, "victim_cfg": section(victims.VictimConfig, p["victim"]), "shard": args.shard,
            "n_shards": len(a["shards"]), "batch_size": a["batch_size"], "dtype": a["dtype"], "seed": p["seed"],
            "compression": a["compression"], "use_labels": args.pool in a["label_pools"]}


def run(*, name: str, spec: dict, pool_name: str, pool_path: str | Path, victim_path: str | Path, victim_cfg: victims.VictimConfig,
        shard: int, n_shards: int, batch_size: int, dtype: str, seed: int, device, out_path: str | Path,
        compression: str = "blosc", use_labels: bool = True, progress: bool = True) -> dict:
    """Attack shard ``shard`` of the pool with instance ``name`` (``spec``: method and parameters).

    The attack pushes each image away from its pool label when ``use_labels`` (the pool's labels
    are the victim's classes) and every image has one; otherwise away from the victim's clean
    prediction (recorded as the ``target`` attribute: ``label`` or ``prediction``)."""
    out_path = Path(out_path)
    with h5py.File(pool_path, "r") as pool:
        n, size = pool["images"].shape[0], pool["images"].shape[1]
        pool_checksum = pool.attrs["checksum"]
        labelled = use_labels and bool((pool["labels"][...] >= 0).all())
    batches = shard_batches(n, batch_size, shard, n_shards)
    rows, first = sum(e - s for _, s, e in batches), batches[0][1] if batches else 0
    attrs = set_attributes(name=name, spec=spec, pool_name=pool_name, pool_checksum=pool_checksum,
                           victim_checksum=sha256_file(victim_path), seed=seed, dtype=dtype, compression=compression,
                           batch_size=batch_size, shard=shard, n_shards=n_shards, labelled=labelled)
    model = inference.prepare(victims.load(victim_path, victim_cfg), device)
    attack, clean_logits = attacks.build(spec, model), CleanLogits(model)
    partial = out_path.with_name(out_path.name + ".partial")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    key = config_digest({k: v for k, v in attrs.items() if k != "versions"})
    f, done = _open_partial(partial, key, rows, size, dtype, batch_size, compression)
    try:
        with h5py.File(pool_path, "r") as pool, tqdm(total=len(batches), initial=done, unit="batch",
                                                    desc=f"attack {pool_name}/{name} shard {shard}",
                                                    disable=not progress) as bar:
            for b, start, end in batches[done:]:
                t0 = time.perf_counter()
                # inputs in the model's layout: no conversion inside every step, one answer per image
                x = inference.as_input(to_tensor(pool["images"][start:end]), device)
                torch.manual_seed(batch_seed(seed, b))
                columns = attack_batch(attack, model, clean_logits, x, pool["labels"][start:end], labelled, dtype,
                                       device)
                append(f, slice(start - first, end - first), np.arange(start, end), columns, time.perf_counter() - t0)
                bar.update()
                log.info("batch %d/%d done", b + 1, batches[-1][0] + 1)
        adv_format.dump_attrs(f, attrs)
        wall, success = float(f.attrs["wall_time_s"]), float(f["success"][...].mean()) if rows else 0.0
    finally:
        f.close()
        clean_logits.handle.remove()
    os.replace(partial, out_path)
    log.info("%s/%s shard %d: %d images in %.1f s (%.1f img/s), success %.3f", pool_name, name, shard, rows,
             wall, rows / max(wall, 1e-9), success)
    return {"n": rows, "wall_time_s": wall, "success_rate": success}


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """The attack's gradients on this shard's images (its declared passes per image), plus the clean
    pass that finds the images the victim already gets wrong."""
    c, size = from_params(p, job.args), p["sample"]["image_size"]
    n = p["sample"]["pools"][job.args.pool]["n"]
    rows = sum(e - s for _, s, e in shard_batches(n, c["batch_size"], c["shard"], c["n_shards"]))
    model = scale.trained_victim(p, job)
    return [scale.attack_load(c["name"], c["spec"], model, rows, c["batch_size"], size),
            scale.Load("clean logits", model, (model,), "forward", c["batch_size"], rows, (3, size, size))]
