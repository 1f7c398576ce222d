"""Stage ``evaluate``: every defence against every test column (clean and each attack), in the two
protocols of Li, Angelov and Suri (Sec. IV):

* seen (Table II): a per-attack defence uses the model trained on the column's attack; a
  ``<defence> (mixed)`` row uses the one trained on the mixed set;
* unseen (Table III): it uses the model trained on another attack, drawn with the seed.

The Clean column of a per-attack defence averages its figures on clean images over the
models its attack columns use. Average = mean over Clean and the attack columns (Li et al.'s "Avr").
Writes results/<protocol>.csv (one row per cell, every metric of ``advrecover.metrics``, each accuracy
with its 95% bootstrap interval over the images), results/<protocol>.md (tables shaped like Li et
al.'s Table II/III, accuracies as ``value ± half-width``) and metrics/evaluate.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import defences as defence_registry
from .. import metrics as M
from ..data.adversarial import read_adversarial
from ..data.pools import read_pool
from ..data.tensors import to_tensor
from ..io import atomic_path, sha256_file, write_json
from ..models import victim as victims

log = logging.getLogger(__name__)
CLEAN, AVERAGE = "clean", "average"
PROTOCOL_TITLES = {
    "seen": "Seen attacks (the AAE trained on the column's attack; Li, Angelov and Suri, Table II)",
    "unseen": "Unseen attacks (the AAE trained on another attack, drawn with the seed; Li, Angelov and Suri, Table III)"}
TITLES = {"accuracy": "Victim accuracy on recovered images (%)",
          "recovery_rate": "Recovery rate: correct after recovery among correct when clean (%)",
          "recovery_ratio": "Recovery ratio: pixels within tau of the clean image (%)",
          "psnr": "PSNR of the recovered to the clean image (dB)",
          "ssim": "SSIM of the recovered to the clean image",
          "psnr_to_input": "PSNR of the recovered image to the defence's input (dB; high = identity map)"}


def unseen_pairs(columns: list[str], train_on: list[str], seed: int) -> dict[str, str]:
    """For each attack column, a training set drawn (seeded, per column) from the *other* attacks."""
    pairs = {}
    for column in columns:
        others = [t for t in train_on if t != column]
        if not others:
            raise ValueError(f"unseen protocol: no training attack other than {column!r} in recovery.train_on")
        rng = np.random.default_rng([seed, *column.encode()])
        pairs[column] = others[int(rng.integers(len(others)))]
    return pairs


@torch.no_grad()
def evaluate_cell(defence, victim, clean: torch.Tensor, inputs: torch.Tensor, labels: np.ndarray,
                  pred_clean: np.ndarray, tau: float, batch_size: int, device) -> M.Scores:
    """Recover ``inputs`` (N, 3, H, W) with ``defence`` and score each image against ``clean``."""
    preds, pixels = [], []
    for s in range(0, len(inputs), batch_size):
        x_in = inputs[s:s + batch_size].to(device)
        rec = defence.recover(x_in).clamp(0, 1)
        preds.append(victim(rec).argmax(1).cpu().numpy())
        nhwc = [t.permute(0, 2, 3, 1).cpu().numpy() for t in (clean[s:s + batch_size], x_in, rec)]
        pixels.append(M.per_image(*nhwc, tau))
    pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    joined = {k: np.concatenate([p[k] for p in pixels]) for k in M.PIXEL_FIELDS} if pixels else \
        {k: np.zeros(0) for k in M.PIXEL_FIELDS}
    return M.Scores((pred == labels).astype(np.float64), pred_clean == labels, joined)


def table_rows(protocol: str, defences: dict, columns: list[str], train_on: list[str], seed: int, cell) -> list[dict]:
    """The long-format rows of one protocol; ``cell(defence name, train set or None, column) -> M.Scores``."""
    rows = []
    pairs = unseen_pairs(columns, train_on, seed) if protocol == "unseen" else None

    def add(row_name, column, train_sets, scores):
        rows.append({"protocol": protocol, "defence": row_name, "column": column,
                     "train_set": "+".join(train_sets) if train_sets else "", **M.summarise(scores, seed)})

    for name, spec in defences.items():
        if not defence_registry.trained_on_attack(spec):
            for column in [CLEAN, *columns]:
                add(name, column, [], cell(name, None, column))
            continue
        if protocol == "seen":
            plan = {c: c for c in columns if c in train_on}
            skipped = [c for c in columns if c not in train_on]
            if skipped:
                log.warning("seen protocol: no AAE trained on %s (recovery.train_on); cells left empty", skipped)
        else:
            plan = pairs
        if plan:
            sets = list(plan.values())
            add(name, CLEAN, sorted(set(sets)), M.Scores.mean([cell(name, t, CLEAN) for t in sets]))
        for column, t in plan.items():
            add(name, column, [t], cell(name, t, column))
        if protocol == "seen":
            for column in [CLEAN, *columns]:
                add(f"{name} (mixed)", column, ["mixed"], cell(name, "mixed", column))
    return rows


def _wide(frame: pd.DataFrame, values: str, order: list[str]) -> pd.DataFrame:
    wide = frame.pivot(index="defence", columns="column", values=values)
    wide = wide.reindex(columns=[c for c in order if c in wide.columns])
    return wide.reindex(index=list(dict.fromkeys(frame["defence"])))


def markdown(frame: pd.DataFrame, columns: list[str], title: str) -> str:
    """One table per metric in the shape of Li et al.'s Tables II and III: rows = defences,
    columns = Clean, the attacks, Average.
    Accuracies read ``value ± half-width`` of their 95% interval (in points); Average has none."""
    order = [CLEAN, *columns]
    note = "Accuracies: value ± half the width of the 95% bootstrap interval over the evaluated images.\n"
    parts = [f"# {title}\n", note]
    for field, caption in TITLES.items():
        scale = 100 if field in (*M.ACCURACIES, "recovery_ratio") else 1
        fmt = "{:.3f}" if field == "ssim" else "{:.1f}"
        wide = _wide(frame, field, order) * scale
        average = wide.mean(axis=1)
        cells = wide.map(fmt.format)
        if field in M.ACCURACIES:
            half = (_wide(frame, f"{field}_ci_high", order) - _wide(frame, f"{field}_ci_low", order)) * scale / 2
            cells = cells + half.map(lambda h: " ± " + fmt.format(h))
        cells[AVERAGE] = average.map(fmt.format)
        cells.columns = ["Clean" if c == CLEAN else ("Average" if c == AVERAGE else c) for c in cells.columns]
        align = ("left", *["right"] * len(cells.columns))
        parts.append(f"## {caption}\n\n{cells.to_markdown(disable_numparse=True, colalign=align)}\n")
    return "\n".join(parts)


class Cells:
    """``cells(defence, train_set, column) -> M.Scores``: each cell evaluated once, each defence
    model built once (the seen and unseen tables share most cells)."""

    def __init__(self, defences: dict, models_dir, victim, clean: torch.Tensor, inputs: dict, labels: np.ndarray,
                 pred_clean: np.ndarray, tau: float, batch_size: int, device):
        self.defences, self.models_dir, self.victim = defences, models_dir, victim
        self.clean, self.inputs, self.labels, self.pred_clean = clean, inputs, labels, pred_clean
        self.tau, self.batch_size, self.device = tau, batch_size, device
        self.built, self.scores = {}, {}

    def __call__(self, name: str, train_set: str | None, column: str) -> M.Scores:
        if (name, train_set, column) not in self.scores:
            if (name, train_set) not in self.built:
                defence = defence_registry.build(self.defences[name], self.models_dir, train_set)
                self.built[name, train_set] = defence.to(self.device)
            self.scores[name, train_set, column] = evaluate_cell(
                self.built[name, train_set], self.victim, self.clean, self.inputs[column], self.labels,
                self.pred_clean, self.tau, self.batch_size, self.device)
            log.info("%s [%s] on %s: accuracy %.3f", name, train_set, column,
                     self.scores[name, train_set, column].correct.mean())
        return self.scores[name, train_set, column]


def run(*, defences: dict, columns: list[str], train_on: list[str], pool_path: str | Path, adversarial_dir: str | Path,
        victim_path: str | Path, victim_cfg: victims.VictimConfig, models_dir: str | Path, tau: float, batch_size: int, seed: int,
        device, results_dir: str | Path, metrics_path: str | Path) -> dict:
    """Evaluate every defence on every column; write the results and metrics files."""
    defence_registry.check(defences)
    pool = read_pool(pool_path)
    if not pool.labelled:
        raise ValueError(f"{pool_path}: the evaluated pool needs labels (accuracy is measured against them)")
    labels = pool.labels
    victim_checksum = sha256_file(victim_path)
    victim = victims.load(victim_path, victim_cfg).to(device)
    clean = to_tensor(pool.images)
    inputs = {CLEAN: clean}
    for a in columns:
        s = read_adversarial(Path(adversarial_dir) / f"{a}.h5", victim_checksum, pool.attrs["checksum"])
        if not np.array_equal(s.pool_index, np.arange(len(labels))):
            raise ValueError(f"{adversarial_dir}/{a}.h5: does not hold the whole pool in order; re-run its attack stages")
        inputs[a] = to_tensor(s.float_images)
    with torch.no_grad():
        pred_clean = np.concatenate([victim(clean[s:s + batch_size].to(device)).argmax(1).cpu().numpy()
                                     for s in range(0, len(clean), batch_size)]) if len(clean) else labels

    cell = Cells(defences, models_dir, victim, clean, inputs, labels, pred_clean, tau, batch_size, device)
    results_dir = Path(results_dir)
    summary = {}
    for protocol in ("seen", "unseen"):
        frame = pd.DataFrame(table_rows(protocol, defences, columns, train_on, seed, cell))
        with atomic_path(results_dir / f"{protocol}.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6f")
        with atomic_path(results_dir / f"{protocol}.md") as tmp:
            tmp.write_text(markdown(frame, columns, PROTOCOL_TITLES[protocol]))
        summary[protocol] = {
            d: {**{r["column"]: round(r["accuracy"], 6) for _, r in g.iterrows()},
                AVERAGE: round(float(g["accuracy"].mean()), 6)}
            for d, g in frame.groupby("defence", sort=False)}
    write_json(metrics_path, {"accuracy": summary})
    return summary
