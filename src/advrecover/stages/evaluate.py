"""Stage ``evaluate``: one defence against every test column (clean and each attack), in the two
protocols of Li, Angelov and Suri (Sec. IV); one job per defence of ``evaluate.defences``.

* seen (Table II): a per-attack defence uses the model trained on the column's attack; a
  ``<defence> (mixed)`` row uses the one trained on the mixed set;
* unseen (Table III): it uses the model trained on another attack, drawn with the seed.

The Clean column of a per-attack defence averages its figures on clean images over the
models its attack columns use. Every cell also has the detection rate of :mod:`advrecover.detection`
(threshold from the clean images of the calibration split, rate on the other images; on Clean
it is the false-positive rate). A defence with its own classifier (adversarial training) is
scored with it, on the same stored attack images (made against the victim: transfer); its rows
say ``classifier: own``. Writes ``results/defences/<defence>/<protocol>.csv`` (one row
per cell, every metric of ``advrecover.metrics``, each accuracy with its 95% bootstrap
interval) and ``images.csv.gz`` (one row per model, column and image: the answer, whether it
is right, the detection score), and ``metrics/defences/<defence>.json`` (each row's accuracies):
stage ``tables`` assembles the tables of every defence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import defences as defence_registry
from .. import detection, inference, scale
from .. import metrics as M
from ..config import entry, section
from ..data.adversarial import read_adversarial
from ..data.pools import read_pool
from ..data.tensors import to_tensor
from ..io import atomic_path, sha256_file, write_csv_gz, write_json
from ..models import victim as victims

log = logging.getLogger(__name__)
CLEAN, PROTOCOLS = M.CLEAN, M.PROTOCOLS


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
def evaluate_cell(defence, victim, clean: torch.Tensor, inputs: torch.Tensor, labels: np.ndarray, pred_clean: np.ndarray,
                  tau: float, batch_size: int, device, seed: int = 0) -> tuple[M.Scores, np.ndarray]:
    """Recover ``inputs`` (N, 3, H, W) with ``defence``; score each image against ``clean``. Also
    returns each input's detection score (:func:`advrecover.detection.scores`). Seeded, so a
    random defence gives the same cell whatever was evaluated before it."""
    torch.manual_seed(seed)
    preds, pixels, scores = [], [], []
    for s in range(0, len(inputs), batch_size):
        x_in = inputs[s:s + batch_size].to(device)
        rec = defence.recover(x_in).clamp(0, 1)
        preds.append(inference.logits(victim, rec).argmax(1).cpu().numpy())
        scores.append(detection.scores(x_in, rec))
        nhwc = [t.permute(0, 2, 3, 1).cpu().numpy() for t in (clean[s:s + batch_size], x_in, rec)]
        pixels.append(M.per_image(*nhwc, tau))
    pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    joined = {k: np.concatenate([p[k] for p in pixels]) for k in M.PIXEL_FIELDS} if pixels else \
        {k: np.zeros(0) for k in M.PIXEL_FIELDS}
    score = np.concatenate(scores) if scores else np.zeros(0)
    return M.Scores((pred == labels).astype(np.float64), pred_clean == labels, joined, pred=pred), score


def table_rows(protocol: str, name: str, spec: dict, columns: list[str], train_on: list[str], seed: int,
               cell) -> list[dict]:
    """The long-format rows of one defence in one protocol; ``cell(train set or None, column) -> M.Scores``."""
    rows = []

    def add(row_name, column, train_sets, scores):
        rows.append({"protocol": protocol, "defence": row_name, "column": column,
                     "train_set": "+".join(train_sets) if train_sets else "", **M.summarise(scores, seed)})

    if not defence_registry.trained_on_attack(spec):
        for column in [CLEAN, *columns]:
            add(name, column, [], cell(None, column))
        return rows
    if protocol == "seen":
        plan = {c: c for c in columns if c in train_on}
        skipped = [c for c in columns if c not in train_on]
        if skipped:
            log.warning("seen protocol: no AAE trained on %s (recovery.train_on); cells left empty", skipped)
    else:
        plan = unseen_pairs(columns, train_on, seed)
    if plan:
        sets = list(plan.values())
        add(name, CLEAN, sorted(set(sets)), M.Scores.mean([cell(t, CLEAN) for t in sets]))
    for column, t in plan.items():
        add(name, column, [t], cell(t, column))
    if protocol == "seen":
        for column in [CLEAN, *columns]:
            add(f"{name} (mixed)", column, ["mixed"], cell("mixed", column))
    return rows


@dataclass(frozen=True)
class Inputs:
    """What every cell is evaluated on: the clean images, each column's images (``columns``), the
    labels, the victim's clean predictions, and the detector's (calibration, evaluation) rows."""

    clean: torch.Tensor
    columns: dict
    labels: np.ndarray
    pred_clean: np.ndarray
    calibration: np.ndarray
    held_out: np.ndarray


class Cells:
    """``cells(train_set, column) -> M.Scores`` for one defence: each cell evaluated once, each
    model built once (the seen and unseen tables share most cells), each model's detection
    threshold set on its clean scores of the calibration rows."""

    def __init__(self, spec: dict, models_dir, victim, data: Inputs, tau: float, fpr: float, batch_size: int,
                 device, seed: int):
        self.spec, self.models_dir, self.victim, self.data = spec, models_dir, victim, data
        self.tau, self.fpr, self.batch_size, self.device, self.seed = tau, fpr, batch_size, device, seed
        self.built, self.raw, self.scores, self.limits = {}, {}, {}, {}

    def _model(self, train_set: str | None):
        """The defence of ``train_set``, the classifier behind it, and that classifier's clean predictions."""
        if train_set not in self.built:
            defence = defence_registry.build(self.spec, self.models_dir, train_set, self.victim).to(self.device)
            classifier = defence_registry.classifier(defence, self.victim, self.device)
            pred_clean = self.data.pred_clean if classifier is self.victim else \
                inference.predict(classifier, self.data.clean, self.batch_size, self.device)  # its own classifier's
            self.built[train_set] = defence, classifier, pred_clean
        return self.built[train_set]

    @property
    def own_classifier(self) -> bool:
        return any(classifier is not self.victim for _, classifier, _ in self.built.values())

    def _raw(self, train_set: str | None, column: str) -> tuple[M.Scores, np.ndarray]:
        if (train_set, column) not in self.raw:
            defence, classifier, pred_clean = self._model(train_set)
            d = self.data
            self.raw[train_set, column] = evaluate_cell(defence, classifier, d.clean, d.columns[column], d.labels,
                                                        pred_clean, self.tau, self.batch_size, self.device, self.seed)
        return self.raw[train_set, column]

    def __call__(self, train_set: str | None, column: str) -> M.Scores:
        if (train_set, column) not in self.scores:
            if train_set not in self.limits:
                clean_scores = self._raw(train_set, CLEAN)[1]
                self.limits[train_set] = detection.threshold(clean_scores[self.data.calibration], self.fpr)
            result, score = self._raw(train_set, column)
            result.detected = (score[self.data.held_out] > self.limits[train_set]).astype(np.float64)
            self.scores[train_set, column] = result
            log.info("[%s] on %s: accuracy %.3f, detection rate %.3f", train_set, column, result.correct.mean(),
                     result.detected.mean() if len(result.detected) else float("nan"))
        return self.scores[train_set, column]


def load_inputs(*, pool_path, adversarial_dir, columns: list[str], victim, victim_checksum: str, batch_size: int,
                calibration_share: float, seed: int, device) -> Inputs:
    """The evaluated pool, its adversarial sets (checked against pool and victim) and the clean predictions."""
    pool = read_pool(pool_path)
    if not pool.labelled:
        raise ValueError(f"{pool_path}: the evaluated pool needs labels (accuracy is measured against them)")
    clean = to_tensor(pool.images)
    images = {CLEAN: clean}
    for a in columns:
        s = read_adversarial(Path(adversarial_dir) / f"{a}.h5", victim_checksum, pool.attrs["checksum"])
        if not np.array_equal(s.pool_index, np.arange(len(pool.labels))):
            raise ValueError(f"{adversarial_dir}/{a}.h5: does not hold the whole pool in order; re-run its attack stages")
        images[a] = to_tensor(s.float_images)
    pred_clean = inference.predict(victim, clean, batch_size, device)
    calibration, held_out = detection.split(len(pool.labels), calibration_share, seed)
    return Inputs(clean, images, pool.labels, pred_clean, calibration, held_out)


def records(cells: Cells) -> pd.DataFrame:
    """One row per evaluated (model, column) cell and image: the pool index, the prediction, whether
    it is right and the detection score (the transfer evaluation's per-image record)."""
    frames = [pd.DataFrame({"model": train_set or "", "column": column, "image": np.arange(len(result.pred)),
                            "correct": result.correct.astype(bool), "prediction": result.pred, "score": score})
              for (train_set, column), (result, score) in cells.raw.items()]
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class EvaluateConfig:
    """One defence (its name and ``evaluate.defences`` entry) against the test columns (``attack.run``),
    with the AAE training sets of the protocols, the recovery-ratio ``tau``, the batch, the
    detector's calibration share and false-positive rate, and the seed."""
    defence: str
    spec: dict
    columns: list
    train_on: list
    tau: float
    batch_size: int
    calibration_share: float
    fpr: float
    seed: int


def from_params(p: dict, args) -> dict:
    """The values of ``run`` that come from the validated params (and this job's ``args``): the
    one translation, used by the CLI and by :func:`workload`."""
    e = p["evaluate"]
    cfg = EvaluateConfig(defence=args.defence, spec=entry(e["defences"], args.defence, "defence", "evaluate.defences"),
                         columns=p["attack"]["run"], train_on=p["recovery"]["train_on"], tau=e["tau"],
                         batch_size=e["batch_size"], calibration_share=e["detection"]["calibration_share"],
                         fpr=e["detection"]["fpr"], seed=p["seed"])
    return {"cfg": cfg, "victim_cfg": section(victims.VictimConfig, p["victim"])}


def run(*, cfg: EvaluateConfig, victim_cfg: victims.VictimConfig, pool_path: str | Path,
        adversarial_dir: str | Path, victim_path: str | Path, models_dir: str | Path, device,
        out_dir: str | Path, metrics_path: str | Path) -> dict:
    """Evaluate ``cfg.defence`` on every column in both protocols; write ``<out_dir>/<protocol>.csv``
    and, at ``metrics_path``, each row's accuracies and their average (what ``dvc exp show`` compares
    when an experiment re-runs one defence: the ablations)."""
    victim = inference.prepare(victims.load(victim_path, victim_cfg), device)
    data = load_inputs(pool_path=pool_path, adversarial_dir=adversarial_dir, columns=cfg.columns, victim=victim,
                       victim_checksum=sha256_file(victim_path), batch_size=cfg.batch_size,
                       calibration_share=cfg.calibration_share, seed=cfg.seed, device=device)
    cell = Cells(cfg.spec, models_dir, victim, data, cfg.tau, cfg.fpr, cfg.batch_size, device, cfg.seed)
    frames = {}
    for protocol in PROTOCOLS:
        frames[protocol] = pd.DataFrame(table_rows(protocol, cfg.defence, cfg.spec, cfg.columns, cfg.train_on,
                                                   cfg.seed, cell))
        frames[protocol]["classifier"] = "own" if cell.own_classifier else "victim"
        with atomic_path(Path(out_dir) / f"{protocol}.csv") as tmp:
            frames[protocol].to_csv(tmp, index=False, float_format="%.6f")
    write_csv_gz(Path(out_dir) / "images.csv.gz", records(cell))
    write_json(metrics_path, {"accuracy": {protocol: M.accuracy_summary(f) for protocol, f in frames.items()}})
    return frames


def workload(p: dict, job: scale.Job) -> list[scale.Load]:
    """The defended answer (repair, then classifier) on the clean and every attacked column of the
    pool, charged for every model of a per-attack defence (an upper bound: cells are shared)."""
    cfg, size = from_params(p, job.args)["cfg"], p["sample"]["image_size"]
    spec = cfg.spec
    victim = scale.trained_victim(p, job)
    sets = [*cfg.train_on, "mixed"] if defence_registry.trained_on_attack(spec) else [None]
    defence = defence_registry.build(spec, job.path(job.args.models), sets[0], victim)
    classifier = defence_registry.classifier(defence, victim)
    images = p["sample"]["pools"][p["evaluate"]["pool"]]["n"] * (len(cfg.columns) + 1) * len(sets)
    return [scale.Load("defended answers", lambda x: classifier(defence.recover(x)), (defence, classifier), "forward",
                       cfg.batch_size, images, (3, size, size))]
